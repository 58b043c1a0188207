"""chaos part of the local harness."""
