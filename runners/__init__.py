"""Command-line runners and the wiring they share. Runners only wire: config in,
feeds, strategy, sizer, analyzers and broker into a Cerebro, results out."""
