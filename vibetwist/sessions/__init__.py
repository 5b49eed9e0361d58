"""Sessions on the reactor: programs in PTYs or other processes, recordings, followers, the service."""
