"""Who may use the daemon: passwords, SSH keys, signed tokens, and the gate in front of every route."""
