"""The HTTP and WebSocket face of the daemon: REST, SSE, /buffers, byte streams, static files, checks."""
