"""Domain-free plumbing shared by the engine and the replay: structured logging, cancellation-safe
waits, rate-limited warnings, heap settling, a reconnecting WebSocket iterator, clock protocols.

What belongs here: code any asyncio service would need, with no trading, market or venue
knowledge (no books, orders, symbols, exchange messages or exchange rules). That is what lets
the judge (`replay`) and the judged (`engine`) share it: a bug here cannot make the oracle agree
with the engine about the market. Anything that knows a venue's protocol or a market's rules
belongs to the engine or to the replay, each its own copy.

plumbing imports nothing of ours (import-linter contract in pyproject.toml); `engine.core` does not
import plumbing either, so it stays pure.
"""
