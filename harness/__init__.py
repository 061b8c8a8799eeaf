"""The harness that proves the engine: local stack, Toxiproxy wiring, chaos, measurements,
SLO evaluation, game days, reports, CLI. May import engine and replay public APIs."""
