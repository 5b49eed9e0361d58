"""Many hosts, one dashboard: daemons joined through NATS (see docs/architecture.md)."""
