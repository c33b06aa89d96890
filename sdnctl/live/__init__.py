"""What the daemon needs to follow change while it runs: its input files (read and
watched), the liveness of fabric links, and the shared controller state."""
