"""HTTP for operators and orchestrators: probes, /metrics, /status, authenticated ops commands."""
