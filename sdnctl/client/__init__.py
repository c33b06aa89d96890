"""Code that talks to a running daemon's HTTP API (the CLI, the lab and the benchmarks use it)."""
