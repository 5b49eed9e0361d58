"""Values and formats with no I/O framework: what a session is, its files, its wire formats."""
