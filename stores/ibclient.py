"""One import for the IB client library: ib_insync, or ib_async (its maintained fork).

Never install both in one environment: each ships a package named ``eventkit`` into the
same folder, and removing one silently breaks the other."""
from __future__ import annotations

try:
    import ib_insync as ibi
    LIBRARY = "ib_insync"
except ImportError:                       # pragma: no cover - exercised in the ib_async CI env
    try:
        import ib_async as ibi            # type: ignore[no-redef]
        LIBRARY = "ib_async"
    except ImportError:
        ibi = None                        # type: ignore[assignment]
        LIBRARY = None


def require():
    if ibi is None:
        raise ImportError("live trading needs ib_insync (pip install -e '.[live]') or ib_async")
    return ibi


def qualify(ib, *contracts) -> list:
    """Qualified contracts, failures dropped. ib_insync returns only the ones that
    qualified; ib_async returns one entry per input with None for failures."""
    out = ib.qualifyContracts(*contracts)
    return [c for c in out if c is not None and getattr(c, "conId", 0)]
