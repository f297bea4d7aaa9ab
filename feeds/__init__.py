"""Market data sources and the Backtrader feeds that carry them."""
