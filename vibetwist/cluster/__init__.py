"""Many daemons as one: hosts that run sessions and gateways that serve them all, over NATS."""
