"""TWS socket protocol: framing and field encoding (server version 176).

Every message is a 4-byte big-endian length, then NUL-terminated text fields, the
first being the message id. The client opens with ``API\\0`` and one framed
``v<min>..<max>[ options]``; the server answers ``176\\0<yyyymmdd hh:mm:ss TZ>\\0``.
"""
from __future__ import annotations

import asyncio
import math
import struct

SERVER_VERSION = 176
MIN_CLIENT_VERSION = 157
MAX_MSG = 16 * 1024 * 1024
_LEN = struct.Struct(">I")


class ProtocolError(Exception):
    """The peer broke the protocol (bad handshake, oversized message)."""


def fmt(value) -> str:
    """One field as TWS writes it: '' for None, 1/0 for bools, short floats."""
    if value is None:
        return ""
    if value is True:
        return "1"
    if value is False:
        return "0"
    if isinstance(value, float):
        value = float(value)                    # numpy scalars print as np.float64(...)
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    return str(value)


def encode(*fields) -> bytes:
    """A framed message from fields."""
    body = "\0".join(map(fmt, fields)).encode() + b"\0"
    return _LEN.pack(len(body)) + body


def frame(body: bytes) -> bytes:
    return _LEN.pack(len(body)) + body


def parse_versions(text: str) -> tuple[int, int, str]:
    """``v157..176 +PACEAPI`` -> (157, 176, '+PACEAPI')."""
    head, _, options = text.partition(" ")
    if not head.startswith("v"):
        raise ProtocolError(f"bad version string {text!r}")
    lo, sep, hi = head[1:].partition("..")
    try:
        lo_v = int(lo)
        hi_v = int(hi) if sep else lo_v
    except ValueError:
        raise ProtocolError(f"bad version string {text!r}") from None
    return lo_v, hi_v, options


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    """One length-prefixed frame's body."""
    head = await reader.readexactly(4)
    (size,) = _LEN.unpack(head)
    if size > MAX_MSG:
        raise ProtocolError(f"message of {size} bytes")
    return await reader.readexactly(size)


def split_fields(body: bytes) -> list[str]:
    fields = body.decode(errors="backslashreplace").split("\0")
    if fields and fields[-1] == "":
        fields.pop()
    return fields


class Fields:
    """A cursor over a request's fields with typed getters."""

    def __init__(self, fields: list[str], start: int = 0):
        self.f = fields
        self.i = start

    def __len__(self) -> int:
        return len(self.f) - self.i

    def str(self) -> str:
        v = self.f[self.i]
        self.i += 1
        return v

    def int(self, default: int = 0) -> int:
        v = self.str()
        return int(v) if v not in ("", None) else default

    def float(self, default: float | None = None) -> float | None:
        v = self.str()
        if v == "":
            return default
        x = float(v)
        return default if x >= 1.7e308 else x

    def bool(self) -> bool:
        v = self.str()
        return bool(int(v)) if v else False

    def skip(self, n: int = 1) -> None:
        self.i += n

    def contract(self) -> dict:
        """The 12 contract fields ``Client.send`` writes for a Contract."""
        keys = ("conId", "symbol", "secType", "lastTradeDateOrContractMonth", "strike", "right",
                "multiplier", "exchange", "primaryExchange", "currency", "localSymbol", "tradingClass")
        c = {k: self.str() for k in keys}
        c["conId"] = int(c["conId"] or 0)
        try:
            c["strike"] = float(c["strike"] or 0.0)
        except ValueError:
            c["strike"] = 0.0
        if c["strike"] >= 1.7e308:
            c["strike"] = 0.0
        return c
