"""bench part of the local harness."""
