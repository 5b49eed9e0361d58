"""A cluster of vibetwist daemons over NATS: hosts that run sessions, gateways that serve them.

Only a daemon started with ``--nats`` loads this package's NATS code. :mod:`.link` holds
the one NATS connection of a daemon, run in an asyncio loop on a thread of its own so the
reactor stays the epoll reactor; :mod:`.tunnel` carries byte connections (HTTP, WebSockets)
between a gateway and a host over that link; :mod:`.options` holds the connection
settings; :mod:`.registry` the hosts' records in a KV bucket; :mod:`.host` joins a daemon
to the cluster as a host.
"""
