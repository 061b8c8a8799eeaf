"""HTTP for operators and orchestrators: probes, /metrics, /status, authenticated ops commands.

Layer: a sibling of the services (it serves any `engine.runtime.service.Service` and imports
none of them); `engine.app` gives each service its ops server."""
