"""Pure trading logic: no I/O, no asyncio. Services feed these classes and perform the I/O."""
