"""Line inspection worker: consumes frames, judges them in micro-batches, publishes results."""
