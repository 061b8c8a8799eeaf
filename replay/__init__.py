"""Recorder, recording format, replay feed server, exchange simulator, synthetic generator.

May import engine's public APIs (engine.core in particular); never imports harness.
"""
