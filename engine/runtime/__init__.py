"""The service shell every engine service stands on: lifecycle and readiness (`service`), the
engine's Prometheus metrics (`metrics`) and the event-loop lag watchdog (`watchdog`).

It names no service: building and running them is the composition root's job (`engine.app`).
Layer: below the services and engine.ops, above engine.bus, engine.config and engine.core;
logging, waits and heap settling come from `plumbing`, the shared base."""
