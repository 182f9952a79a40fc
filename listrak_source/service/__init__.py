"""The long-running front door: the daemon, its schedules, systemd's notify protocol, metrics."""
