"""Feed handler: venue adapters, connection manager, book builder, redundant feeds."""
