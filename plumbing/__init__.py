"""The shared base: domain-free plumbing that the engine, the replay and the harness all stand on.

    plumbing.logging           structured JSON logs, secret redaction, bound context
    plumbing.waits             cancellation-safe waits (`within`, `wait_set`, `raise_if_cancelled`)
    plumbing.heap              heap settling once a process has started (`settle_heap`)
    plumbing.ratelimited_log   a warning that repeats is logged once per interval, with a count
    plumbing.backoff           exponential backoff with full jitter
    plumbing.clock             the clock protocols plumbing needs, and the system clock
    plumbing.event_loop        which asyncio event loop a process runs on (uvloop or asyncio)
    plumbing.http_limits       bounds of an aiohttp server: body, headers, time, connections
    plumbing.reconnecting_ws   a WebSocket connection that reconnects with the caller's backoff

What belongs here: code any asyncio service would need, with no trading, market or venue
knowledge (no books, orders, symbols, exchange messages or exchange rules). That is what lets
the judge (`replay`) and the judged (`engine`) share it: a bug here cannot make the oracle agree
with the engine about the market. Anything that knows a venue's protocol or a market's rules
belongs to the engine or to the replay, each its own copy. A concern listed above is not
re-implemented in a program: the program imports it from here.

Layer: the bottom of every program's layers. plumbing imports nothing of ours (import-linter
contracts in pyproject.toml); `engine.core` does not import plumbing either, so it stays pure.
"""
