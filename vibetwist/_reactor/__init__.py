"""Private tuning of the Twisted reactor: fair I/O per turn, immediate writes, lag, time-boxed work."""
