"""``market.source`` -> a Market: synthetic (embedded), csv (your bars, modelled
options) or chain (historical option quotes)."""
from __future__ import annotations

from feeds.market import Market


def load_market(cfg: dict) -> Market:
    source = cfg["market"]["source"]
    if source == "synthetic":
        from feeds.synthetic import synthetic_market
        return synthetic_market(cfg)
    if source == "csv":
        from feeds.csvbars import csv_market
        return csv_market(cfg)
    from feeds.chain import chain_market
    return chain_market(cfg)
