"""grafana part of the local harness."""
