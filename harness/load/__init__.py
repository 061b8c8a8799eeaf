"""Load: Locust runs (always in a subprocess of their own), their statistics as SLIs, and the
engine's stream lag and tick-to-order latency observed while they run."""
