"""One client connection: handshake, framing, subscriptions, outgoing buffer."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from ibsim.market import Instrument, ib_datetime
from ibsim.protocol import (MIN_CLIENT_VERSION, SERVER_VERSION, ProtocolError, encode,
                            parse_versions, read_frame, split_fields)

log = logging.getLogger("ibsim")

TICK_BUFFER_LIMIT = 4 * 1024 * 1024     # bytes queued to a slow client before ticks are dropped


@dataclass
class Subscription:
    req_id: int
    inst: Instrument
    generic: str = ""


@dataclass
class Session:
    """A connected client (``client_id`` is None until startApi)."""
    sim: object
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    client_id: int | None = None
    subs: dict = field(default_factory=dict)           # reqId -> Subscription
    account_sub: bool = False
    positions_sub: bool = False
    multi_subs: set = field(default_factory=set)
    pnl_subs: set = field(default_factory=set)
    md_type: int = 1
    closed: bool = False
    msgs_in: int = 0
    ticks_out: int = 0
    ticks_dropped: int = 0
    connected_at: str = ""

    @property
    def peer(self) -> str:
        p = self.writer.get_extra_info("peername")
        return f"{p[0]}:{p[1]}" if p else "?"

    def _gone(self) -> bool:
        if not self.closed and self.writer.transport.is_closing():
            self.closed = True
        return self.closed

    def send(self, data: bytes) -> None:
        if not self._gone():
            self.writer.write(data)

    def send_ticks(self, data: bytes, count: int) -> None:
        """Market data: dropped (counted) while the client is not reading."""
        if self._gone():
            return
        if self.writer.transport.get_write_buffer_size() > TICK_BUFFER_LIMIT:
            self.ticks_dropped += count
            return
        self.writer.write(data)
        self.ticks_out += count

    def close(self, abort: bool = False) -> None:
        """Close the socket (``abort``: reset at once, like a dropped network)."""
        if self.closed:
            return
        self.closed = True
        try:
            if abort:
                self.writer.transport.abort()
            else:
                self.writer.close()
        except Exception:                                   # already gone
            pass

    async def handshake(self, now_text: str) -> None:
        """``API\\0`` + framed ``v157..176`` -> ``176\\0<time>\\0``."""
        head = await self.reader.readexactly(4)
        if head != b"API\0":
            raise ProtocolError(f"expected API\\0, got {head!r}")
        lo, hi, _opts = parse_versions((await read_frame(self.reader)).decode(errors="replace"))
        if not lo <= SERVER_VERSION <= hi or hi < MIN_CLIENT_VERSION:
            raise ProtocolError(f"client versions v{lo}..{hi} exclude server version {SERVER_VERSION}")
        self.send(encode(SERVER_VERSION, now_text))

    async def serve(self, handle) -> None:
        """Read messages until the peer goes; ``handle(session, fields)`` each."""
        try:
            await self.handshake(ib_datetime(self.sim.clock.now()))
            while not self.closed:
                body = await read_frame(self.reader)
                fields = split_fields(body)
                if not fields:
                    continue
                self.msgs_in += 1
                handle(self, fields)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except ProtocolError as exc:
            log.warning("%s: protocol error: %s", self.peer, exc)
        finally:
            self.close()
