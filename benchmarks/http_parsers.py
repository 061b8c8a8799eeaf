"""Our HTTP/1.1 request parser (replay/exchange/http11.py with its C head parser) against llhttp
through httptools (the parser uvicorn uses), in the exchange simulator (issue 18).

Two measures, each with both parsers in the same run:

1. **Instructions per request** (valgrind's callgrind, which does not move with the machine's
   load): the requests a ccxt client sends (a signed order POST, its DELETE, a ping GET) framed,
   parsed and answered by the server's connection (`HttpProtocol.buffer_updated`, one socket
   read per request, a handler that answers at once, a transport that only counts bytes), with
   our parser and with llhttp (`benchmarks/llhttp_protocol.py`). Two runs of different lengths
   are subtracted, so start-up is not counted.
2. **Order round trips per second** on live servers: `replay serve` and the same on llhttp run
   side by side; the lean load client (`benchmarks.http_load`, its own process) drives one then
   the other in ABBA order, orders (create + cancel) and ping, several rounds.

    .venv/bin/python -m benchmarks.http_parsers [--rounds 3] [--seconds 4] [--no-live]

Needs httptools (`pip install httptools`) and, for the first measure, valgrind.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import callgrind_instructions, replay_server, rest_url, synthetic
from benchmarks.http_load import KEY, SECRET, cancel_query, order_body
from benchmarks.venue_orders import UNLIMITED, load
from replay.exchange.http11 import HttpProtocol, HttpRequest, Reply

SHORT, LONG = 300, 2300
PARSERS = ("ours", "llhttp")


class _CountingTransport(asyncio.Transport):
    """What HttpProtocol needs of a transport; writes are counted, not sent."""

    def __init__(self) -> None:
        self.written = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += len(data)

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 50000) if name == "peername" else default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass


def _requests() -> list[bytes]:
    """A ccxt-like keep-alive exchange: an order, its cancel, a ping (headers as ccxt's aiohttp
    client sends them)."""
    common = (
        "Host: 127.0.0.1:9080\r\nUser-Agent: python-aiohttp/3.14\r\nAccept: */*\r\n"
        "Accept-Encoding: gzip, deflate\r\n"
    )
    body = order_body("x-R4BD3S82abcdef012345", "50000.00").encode()
    order = (
        f"POST /api/v3/order HTTP/1.1\r\n{common}X-MBX-APIKEY: {KEY}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    cancel = (
        f"DELETE /api/v3/order?{cancel_query('x-R4BD3S82abcdef012345')} HTTP/1.1\r\n"
        f"{common}X-MBX-APIKEY: {KEY}\r\n\r\n"
    ).encode()
    ping = f"GET /api/v3/ping HTTP/1.1\r\n{common}\r\n".encode()
    return [order, cancel, ping]


def drive(parser: str, rounds: int) -> None:
    """The counted program: `rounds` times the three requests through one connection. The
    cyclic garbage collector is off: a full collection that falls inside the longer run and not
    the shorter one would be counted as work per request (it moved venue_handler_instructions'
    figure by 19,000 instructions a pair between two trees whose order path differed by 116)."""
    gc.disable()
    protocol_class: type[HttpProtocol] = HttpProtocol
    if parser == "llhttp":
        from benchmarks.llhttp_protocol import LlhttpProtocol

        protocol_class = LlhttpProtocol
    answer = Reply(b"{}")

    def handler(request: HttpRequest) -> Reply:
        return answer

    protocol = protocol_class(handler)
    transport = _CountingTransport()
    protocol.connection_made(transport)
    requests = _requests()
    for _ in range(rounds):
        for raw in requests:
            view = protocol.get_buffer(len(raw))
            view[: len(raw)] = raw
            protocol.buffer_updated(len(raw))
    if transport.written < rounds * len(requests) * 50:
        raise SystemExit(f"{parser}: the requests were not all answered")


def count(parser: str, rounds: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        return callgrind_instructions(
            ["benchmarks.http_parsers", "--drive", parser, "--requests", str(rounds)],
            Path(tmp) / "out",
        )


def instructions() -> dict[str, Any]:
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is needed: apt-get install valgrind (or --no-instructions)")
    per_request = {}
    for parser in PARSERS:
        short, long = count(parser, SHORT), count(parser, LONG)
        per_request[parser] = (long - short) / ((LONG - SHORT) * 3)
    return {
        "instructions_per_request": {p: round(v) for p, v in per_request.items()},
        "llhttp_vs_ours": round(per_request["llhttp"] / per_request["ours"], 3),
    }


def median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def live(rounds: int, seconds: float, workers: int) -> dict[str, Any]:
    recording = synthetic(1800)
    results: dict[str, dict[str, list[float]]] = {
        p: {"orders": [], "ping": [], "p99_ms": []} for p in PARSERS
    }
    with (
        replay_server(recording, speed="1", extra=UNLIMITED, account=(KEY, SECRET)) as ours,
        replay_server(
            recording,
            speed="1",
            extra=UNLIMITED,
            account=(KEY, SECRET),
            module="benchmarks.llhttp_protocol",
        ) as theirs,
    ):
        urls = {"ours": rest_url(ours[1]), "llhttp": rest_url(theirs[1])}
        for n in range(rounds):
            order = PARSERS if n % 2 == 0 else PARSERS[::-1]  # ABBA
            for parser in order:
                orders = load(urls[parser], "orders", workers, seconds)
                results[parser]["orders"].append(orders["per_second"])
                results[parser]["p99_ms"].append(orders["p99_ms"])
            for parser in order[::-1]:
                results[parser]["ping"].append(
                    load(urls[parser], "ping", workers, seconds)["per_second"]
                )
    medians = {
        p: {k: round(median(v), 2 if k == "p99_ms" else 0) for k, v in r.items()}
        for p, r in results.items()
    }
    return {
        "rounds": rounds,
        "seconds": seconds,
        "workers": workers,
        "each_round": {
            p: {k: [round(x) for x in v] for k, v in r.items()} for p, r in results.items()
        },
        "median": medians,
        "llhttp_vs_ours": {
            k: round(medians["llhttp"][k] / medians["ours"][k], 3) for k in ("orders", "ping")
        },
        # each round's pair (the two servers measured back to back), the median of those ratios
        "llhttp_vs_ours_paired": {
            k: round(
                median(
                    [t / o for t, o in zip(results["llhttp"][k], results["ours"][k], strict=True)]
                ),
                3,
            )
            for k in ("orders", "ping")
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--drive", choices=PARSERS, help="(internal) run, uncounted")
    parser.add_argument("--requests", type=int, default=SHORT)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--live", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--instructions", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()
    if args.drive:
        drive(args.drive, args.requests)
        return
    out: dict[str, Any] = {"benchmark": "http_parsers"}
    if args.instructions:
        out["instructions"] = instructions()
    if args.live:
        out["live"] = live(args.rounds, args.seconds, args.workers)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
