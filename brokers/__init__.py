"""Broker-side Backtrader pieces: commission schemes (and, later, live brokers)."""


def position_reader(broker):
    """data -> live Position, without the copy ``getposition`` makes on every call
    (Backtrader's brokers and ours keep them in ``positions``). Read only."""
    positions = getattr(broker, "positions", None)
    if positions is None:
        return broker.getposition
    return positions.__getitem__
