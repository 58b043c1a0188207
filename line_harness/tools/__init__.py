"""tools part of the local harness."""
