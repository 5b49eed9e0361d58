"""Daemons of several machines as one: hosts that register over NATS, and gateways that serve them."""
