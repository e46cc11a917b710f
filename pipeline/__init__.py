"""The event bus, filter stages, the durable spool, the shipper and replay."""
