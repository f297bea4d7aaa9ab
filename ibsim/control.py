"""JSON-over-HTTP control endpoint on 127.0.0.1.

    POST /fault  {"fault": "stale", "seconds": 5}   -> {"ok": true, "fault", "args", "active"}
    POST /clear                                      -> clears every fault
    POST /advance {"seconds": 300}                   -> moves the market clock forward
    POST /trade  {"contract": {"secType": "OPT", "lastTradeDateOrContractMonth": "20260213",
                  "strike": 175, "right": "C"}, "action": "BUY", "quantity": 10}
                                                     -> a fill by "another client" (TWS by hand)
    GET  /state                                      -> IBSim.state()
    GET  /faults                                     -> the active faults

Errors answer 400 (bad fault or JSON, with {"error": message}) or 404.
"""
from __future__ import annotations

import asyncio
import json
import logging

from ibsim.faults import FaultError

log = logging.getLogger("ibsim")
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 500: "Server Error"}


async def start_control(sim, port: int = 0) -> asyncio.base_events.Server:
    async def serve(reader, writer):
        try:
            status, body = await _request(sim, reader)
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            status, body = 400, {"error": "bad request"}
        data = json.dumps(body, default=str).encode()
        head = (f"HTTP/1.1 {status} {_REASONS.get(status, '')}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n").encode()
        try:
            writer.write(head + data)
            await writer.drain()
            writer.close()
        except ConnectionError:
            pass

    return await asyncio.start_server(serve, "127.0.0.1", port)


async def _request(sim, reader) -> tuple[int, dict]:
    line = (await reader.readline()).decode("latin-1").strip()
    parts = line.split()
    if len(parts) < 2:
        return 400, {"error": "bad request line"}
    method, path = parts[0].upper(), parts[1].split("?")[0].rstrip("/") or "/"
    length = 0
    while True:
        h = (await reader.readline()).decode("latin-1").strip()
        if not h:
            break
        k, _, v = h.partition(":")
        if k.strip().lower() == "content-length":
            length = int(v.strip() or 0)
    raw = await reader.readexactly(length) if length else b""
    try:
        payload = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError as exc:
        return 400, {"error": f"body is not JSON: {exc}"}
    if method == "GET" and path == "/state":
        return 200, sim.state()
    if method == "GET" and path == "/faults":
        return 200, sim.state()["faults"]
    if method == "POST" and path == "/trade":
        if not isinstance(payload, dict) or not isinstance(payload.get("contract"), dict):
            return 400, {"error": "expected a JSON object with a contract object"}
        try:
            return 200, sim.manual_trade(payload["contract"], payload.get("action"), payload.get("quantity"))
        except ValueError as exc:
            return 400, {"error": str(exc)}
    if method == "POST" and path in ("/fault", "/clear", "/advance"):
        if not isinstance(payload, dict):
            return 400, {"error": "expected a JSON object"}
        try:
            if path == "/clear":
                return 200, sim.clear_faults()
            if path == "/advance":
                seconds = payload.get("seconds")
                if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds < 0:
                    return 400, {"error": f"seconds: got {seconds!r}, expected a number >= 0"}
                sim.advance(float(seconds))
                return 200, {"ok": True, "market_time": sim.state()["clock"]["market_time"]}
            args = dict(payload)
            name = args.pop("fault", None)
            return 200, sim.inject(name, **args)
        except FaultError as exc:
            return 400, {"error": str(exc)}
    if path in ("/state", "/faults", "/fault", "/clear", "/advance", "/trade"):
        return 405, {"error": f"{method} not allowed on {path}"}
    return 404, {"error": f"no endpoint {path} (GET /state, GET /faults, POST /fault, POST /clear, "
                          f"POST /advance, POST /trade)"}
