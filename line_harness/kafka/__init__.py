"""kafka part of the local harness."""
