"""Container images of stormproof built without a registry, a daemon or a container builder."""
