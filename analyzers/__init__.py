from analyzers.guards import GuardAnalyzer
from analyzers.pnl import PnLAnalyzer

__all__ = ["GuardAnalyzer", "PnLAnalyzer"]
