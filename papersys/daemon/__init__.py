"""The long-running daemon: the APScheduler loop, cron parsing, and the Prometheus metrics it serves."""
