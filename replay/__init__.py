"""Recorder, recording format, replay feed server, exchange simulator, synthetic generator.

The oracle: it owns its book, depth sync, Binance parsing and id rules, and imports nothing of the
engine (a bug in the engine must show up as a disagreement, not be reproduced here). It may use
`plumbing`, the domain-free base layer; it never imports harness.
"""
