"""The local S3-compatible evidence store (SeaweedFS) for tests and the demo; see server.py and cli.py."""
