"""demo part of the local harness."""
