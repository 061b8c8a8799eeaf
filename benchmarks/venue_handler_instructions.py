"""Instructions per signed create + cancel pair in the simulator's REST handlers, counted by
valgrind's callgrind: a figure that does not move with the machine's load, for judging a change
to the order path on a machine whose timings swing by a third (issue 4).

    .venv/bin/python -m benchmarks.venue_handler_instructions

The handlers run without sockets, the event loop, the rate limiter or the fault book (their
costs depend on wall time, which valgrind's slowdown would change). The venue stands on a
synthetic market; each pair is a resting LIMIT GTC buy and its cancel by client order id. Two
runs of different lengths are counted and subtracted, so that start-up is not counted.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from benchmarks.common import callgrind_instructions, synthetic
from benchmarks.http_load import KEY, SECRET, cancel_query, order_body
from replay.exchange.http11 import Headers, HttpRequest, Reply
from replay.server import SimAccount, offline_venue

SHORT, LONG = 200, 1200


def _request(method: str, path: str, query: str, body: bytes) -> HttpRequest:
    headers = Headers()
    headers.add("Host", "127.0.0.1")
    headers.add("X-MBX-APIKEY", KEY)
    if body:
        headers.add("Content-Type", "application/x-www-form-urlencoded")
    return HttpRequest(method, path, query, headers, body, None, "127.0.0.1")


def run_pairs(pairs: int, recording: Path) -> None:
    """The counted program: a venue on the recording's first records, then `pairs` pairs."""
    account = SimAccount(api_key=KEY, api_secret=SECRET, balances={"USDT": Decimal(10**12)})
    server = offline_venue(recording, account)
    now_ms = time.time_ns() // 1_000_000 + 500
    # a fixed clock: under valgrind the requests would age past recvWindow and be refused
    server.api.clock_ms = lambda: now_ms
    server.matching.clock_ms = lambda: now_ms
    # the recent-client-id window full from the start, as in any run past its first 10,000
    # orders, without placing 10,000 orders under valgrind first
    server.matching._recent_limit = 100
    book = server.market.book("BTCUSDT")
    best_bid = book.bids.best() if book is not None else None
    if best_bid is None:
        raise SystemExit("no book after 3,000 records of the synthetic recording")
    price = f"{best_bid[0] * 0.95:.2f}"  # a resting buy
    routes = server.api.routes()
    requests = []
    for n in range(pairs):
        client_id = f"i{n}"
        requests.append(
            _request("POST", "/api/v3/order", "", order_body(client_id, price).encode())
        )
        requests.append(_request("DELETE", "/api/v3/order", cancel_query(client_id), b""))
    for request in requests:
        reply = routes[(request.method, request.path)](request)
        if not isinstance(reply, Reply):
            raise SystemExit(f"{request.method} {request.path} did not answer at once")
        if reply.status != 200:
            raise SystemExit(f"HTTP {reply.status}: {reply.body!r}")


def count(pairs: int, recording: Path, out_dir: Path) -> int:
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is needed: apt-get install valgrind")
    return callgrind_instructions(
        [
            "benchmarks.venue_handler_instructions",
            "--pairs",
            str(pairs),
            "--recording",
            str(recording),
        ],
        out_dir / f"callgrind.{pairs}",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, help="(internal) run this many pairs, uncounted")
    parser.add_argument("--recording", type=Path)
    args = parser.parse_args()
    if args.pairs is not None:
        run_pairs(args.pairs, args.recording)
        return
    recording = synthetic(1800)
    with tempfile.TemporaryDirectory() as tmp:
        short, long = count(SHORT, recording, Path(tmp)), count(LONG, recording, Path(tmp))
    print(
        json.dumps(
            {
                "benchmark": "venue_handler_instructions",
                "pairs": [SHORT, LONG],
                "instructions_per_pair": (long - short) // (LONG - SHORT),
            }
        )
    )


if __name__ == "__main__":
    main()
