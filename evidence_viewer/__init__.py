"""The operator page: the latest defects per line and camera, read from the evidence store."""
