from sizers.hedge import HedgeSizer

__all__ = ["HedgeSizer"]
