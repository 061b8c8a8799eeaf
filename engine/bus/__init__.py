"""Message bus: Redis Streams with consumer groups, and an in-process MemoryBus with the same
semantics (at-least-once, acknowledgement after the effect is durable, reclaim of a dead
consumer's pending entries, bounded streams)."""

from engine.bus.base import Bus, Delivery, md_stream
from engine.bus.memory import MemoryBus

__all__ = ["Bus", "Delivery", "MemoryBus", "md_stream"]
