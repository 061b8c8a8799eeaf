"""An async HTTP load client for the exchange simulator, run in its own process.

    python -m benchmarks.http_load --url http://127.0.0.1:PORT --mode ping|orders|ccxt \
        --workers 16 --seconds 10 [--client raw|aiohttp]
    python -m benchmarks.http_load --url ... --mode paired --slices 8 --slice-seconds 1
    python -m benchmarks.http_load --url ... --mode at_rate --rate 2000 --seconds 8 --workers 16
Prints one JSON line: completed operations, per second, latency p50/p99 (ms); `paired`
alternates ping and orders slices on the raw client and prints each slice's rate.
`orders` is a signed LIMIT order far from the market (it rests) then its cancel; one operation
is the pair. `ccxt` does the same through ccxt.async_support.binance.
`--client raw` (the default) sends ping and orders through `benchmarks.raw_http`, a lean
keep-alive client, so that the server rather than the client is measured; `--client aiohttp`
is the general-purpose client, for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import hashlib
import hmac
import itertools
import json
import os
import time
from collections.abc import Iterator
from typing import Any

import aiohttp

from benchmarks.raw_http import RawHttpClient

KEY, SECRET = "bench-key", "bench-secret"


_KEYED = hmac.new(SECRET.encode(), digestmod=hashlib.sha256)


def sign(query: str) -> str:
    """`query` with its timestamp and signature appended. The key schedule is computed once:
    the client shares the server's two cores, so what it spends per request is measured as
    the server's loss."""
    query = f"{query}&timestamp={time.time_ns() // 1_000_000}"
    keyed = _KEYED.copy()
    keyed.update(query.encode())
    return f"{query}&signature={keyed.hexdigest()}"


def order_body(client_id: str, price: str) -> str:
    """A resting LIMIT GTC buy. Formatted, not url-encoded: the client id (letters, digits and
    '-') and the price (digits and '.') need no escaping."""
    return sign(
        "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.001"
        f"&price={price}&newClientOrderId={client_id}&newOrderRespType=ACK"
    )


def cancel_query(client_id: str) -> str:
    return sign(f"symbol=BTCUSDT&origClientOrderId={client_id}")


async def worker(
    name: int, url: str, mode: str, deadline: float, latencies: list[float], price: str
) -> None:
    headers = {"X-MBX-APIKEY": KEY, "Content-Type": "application/x-www-form-urlencoded"}
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector) as http:
        n = 0
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            if mode == "ping":
                async with http.get(f"{url}/api/v3/ping") as r:
                    await r.read()
                    ok = r.status == 200
            else:
                client_id = f"b{os.getpid()}-{name}-{n}"  # unique across runs on one server
                body = order_body(client_id, price)
                async with http.post(f"{url}/api/v3/order", data=body, headers=headers) as r:
                    await r.read()
                    ok = r.status == 200
                query = cancel_query(client_id)
                async with http.delete(f"{url}/api/v3/order?{query}", headers=headers) as r:
                    await r.read()
                    ok = ok and r.status == 200
            if not ok:
                raise RuntimeError(f"request failed in mode {mode}")
            latencies.append(time.perf_counter() - started)
            n += 1


_FORM = f"X-MBX-APIKEY: {KEY}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
_KEY_ONLY = f"X-MBX-APIKEY: {KEY}\r\n"


async def raw_operation(http: RawHttpClient, mode: str, client_id: str, price: str) -> None:
    """One operation on the lean client: a ping, or an order and its cancel."""
    if mode == "ping":
        status, _ = await http.request("GET", "/api/v3/ping")
    else:
        body = order_body(client_id, price).encode()
        status, _ = await http.request("POST", "/api/v3/order", body=body, headers=_FORM)
        if status == 200:
            query = cancel_query(client_id)
            status, _ = await http.request("DELETE", f"/api/v3/order?{query}", headers=_KEY_ONLY)
    if status != 200:
        raise RuntimeError(f"request failed in mode {mode}: HTTP {status}")


async def raw_loop(
    http: RawHttpClient,
    mode: str,
    deadline: float,
    latencies: list[float],
    client_ids: Iterator[str],
    price: str,
) -> int:
    """Operations back to back until the deadline; returns how many completed."""
    done = 0
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        await raw_operation(http, mode, next(client_ids), price)
        latencies.append(time.perf_counter() - started)
        done += 1
    return done


async def raw_worker(
    name: int, url: str, mode: str, deadline: float, latencies: list[float], price: str
) -> None:
    # client ids unique across runs on one server
    pid = os.getpid()  # once: a call per id is a syscall
    client_ids = (f"r{pid}-{name}-{n}" for n in itertools.count())
    async with RawHttpClient(url) as http:
        await raw_loop(http, mode, deadline, latencies, client_ids, price)


async def paired(url: str, workers: int, slices: int, slice_s: float, price: str) -> dict[str, Any]:
    """Ping and orders in alternating slices on the same connections (ping, orders, orders,
    ping, ...: ABBA, so a drift of the machine's speed during the run cancels out). Each
    orders slice is compared with the ping slice next to it: the ratio of two slices a moment
    apart, not of two phases seconds apart on a machine whose speed moves by a third."""
    pid = os.getpid()  # once: a call per id is a syscall
    client_ids = (f"p{pid}-{n}" for n in itertools.count())
    rates: dict[str, list[float]] = {"ping": [], "orders": []}
    order_latencies: list[float] = []
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(RawHttpClient(url)) for _ in range(workers)]
        for pair in range(slices):
            modes = ("ping", "orders") if pair % 2 == 0 else ("orders", "ping")
            for mode in modes:
                latencies: list[float] = []
                start = time.perf_counter()
                deadline = start + slice_s
                counts = await asyncio.gather(
                    *(raw_loop(c, mode, deadline, latencies, client_ids, price) for c in clients)
                )
                rates[mode].append(sum(counts) / (time.perf_counter() - start))
                if mode == "orders":
                    order_latencies.extend(latencies)
    ordered = sorted(order_latencies)
    return {
        "mode": "paired",
        "workers": workers,
        "slice_s": slice_s,
        "ping_per_s": rates["ping"],
        "orders_per_s": rates["orders"],
        "order_requests_vs_ping": [
            2 * o / p for o, p in zip(rates["orders"], rates["ping"], strict=True)
        ],
        "p50_ms": ordered[len(ordered) // 2] * 1000,
        "p99_ms": ordered[int(len(ordered) * 0.99)] * 1000,
    }


async def at_rate(
    url: str, rate: float, seconds: float, connections: int, price: str
) -> dict[str, Any]:
    """Orders (create + cancel pairs) started at a fixed rate, open loop: pair i is due at
    start + i / rate whatever happened to the ones before, and its latency runs from that due
    time. Each connection's worker takes the next pair of the schedule and waits for its due
    time if early; a pair that waits because every connection is busy counts the wait (no
    coordinated omission). The latency a venue gives at a load, not at saturation. One worker
    per connection, not a task per pair: the client shares the machine with the venue."""
    latencies: list[float] = []
    pid = os.getpid()  # once: a call per id is a syscall
    count = int(rate * seconds)
    schedule = iter(range(count))  # shared: each pair is taken by exactly one worker
    start = 0.0

    async def worker(http: RawHttpClient) -> None:
        for i in schedule:
            due = start + i / rate
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            await raw_operation(http, "orders", f"t{pid}-{i}", price)
            latencies.append(time.perf_counter() - due)

    async with contextlib.AsyncExitStack() as stack:
        pool = [await stack.enter_async_context(RawHttpClient(url)) for _ in range(connections)]
        # the client's own full collections must not count as the venue's latency
        gc.collect()
        gc.freeze()
        start = time.perf_counter() + 0.05
        await asyncio.gather(*(worker(http) for http in pool))
        elapsed = time.perf_counter() - start
    ordered = sorted(latencies)
    return {
        "mode": "at_rate",
        "rate": rate,
        "connections": connections,
        "operations": count,
        "per_second": count / elapsed,
        "p50_ms": ordered[len(ordered) // 2] * 1000,
        "p99_ms": ordered[int(len(ordered) * 0.99)] * 1000,
        "max_ms": ordered[-1] * 1000,
    }


async def ccxt_worker(
    name: int, url: str, deadline: float, latencies: list[float], price: float
) -> None:
    import ccxt.async_support as ccxt

    from engine.execution.venue import binance_api_urls

    exchange = ccxt.binance(
        {
            "apiKey": KEY,
            "secret": SECRET,
            "enableRateLimit": False,
            "options": {
                "defaultType": "spot",
                "fetchMarkets": {"types": ["spot"]},
                "fetchCurrencies": False,
                "fetchMargins": False,
            },
        }
    )
    exchange.urls["api"] = binance_api_urls(url)
    try:
        await exchange.load_markets()
        n = 0
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            client_id = f"c{name}-{n}"
            await exchange.create_order(
                "BTC/USDT", "limit", "buy", 0.001, price, {"newClientOrderId": client_id}
            )
            await exchange.cancel_order("", "BTC/USDT", {"origClientOrderId": client_id})
            latencies.append(time.perf_counter() - started)
            n += 1
    finally:
        await exchange.close()


class KeepAwake:
    """Busy-poll: the event loop always has a callback ready, so it polls its sockets without
    blocking and this process's CPU never goes idle. On our VMs an idle vCPU halts, and the
    syscall that wakes it pays for it: a send() to a process blocked in epoll_wait on the
    other, halted vCPU took 70 to 140 µs, against 12 µs to one that polls (docs/benchmarks.md).
    A load client that blocks between responses charges that to the venue's replies. This one
    burns its core instead; it has one to itself."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._handle = loop.call_soon(self._tick)

    def _tick(self) -> None:
        self._handle = self._loop.call_soon(self._tick)

    def stop(self) -> None:
        self._handle.cancel()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    if not args.busy_poll:
        return await measure(args)
    awake = KeepAwake(asyncio.get_running_loop())
    try:
        return await measure(args)
    finally:
        awake.stop()


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    latencies: list[float] = []
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{args.url}/api/v3/depth", params={"symbol": "BTCUSDT", "limit": "5"}) as r,
    ):
        bid = float((await r.json())["bids"][0][0])
    price = round(bid * 0.95, 2)
    if args.mode == "paired":
        return await paired(args.url, args.workers, args.slices, args.slice_seconds, f"{price:.2f}")
    if args.mode == "at_rate":
        return await at_rate(args.url, args.rate, args.seconds, args.workers, f"{price:.2f}")
    start = time.perf_counter()
    deadline = start + args.seconds
    if args.mode == "ccxt":
        tasks = [ccxt_worker(i, args.url, deadline, latencies, price) for i in range(args.workers)]
    else:
        run_worker = raw_worker if args.client == "raw" else worker
        tasks = [
            run_worker(i, args.url, args.mode, deadline, latencies, f"{price:.2f}")
            for i in range(args.workers)
        ]
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    ordered = sorted(latencies)
    return {
        "mode": args.mode,
        "client": "ccxt" if args.mode == "ccxt" else args.client,
        "workers": args.workers,
        "operations": len(ordered),
        "per_second": len(ordered) / elapsed,
        "p50_ms": ordered[len(ordered) // 2] * 1000,
        "p99_ms": ordered[int(len(ordered) * 0.99)] * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument(
        "--mode", choices=["ping", "orders", "ccxt", "paired", "at_rate"], required=True
    )
    parser.add_argument("--rate", type=float, default=2000, help="at_rate: pairs per second")
    parser.add_argument("--slices", type=int, default=8, help="paired: pairs of slices")
    parser.add_argument("--slice-seconds", type=float, default=1.0, help="paired: slice length")
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--client", choices=["raw", "aiohttp"], default="raw")
    parser.add_argument(
        "--busy-poll",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="never let the client's CPU idle (see KeepAwake)",
    )
    print(json.dumps(asyncio.run(run(parser.parse_args()))))


if __name__ == "__main__":
    main()
