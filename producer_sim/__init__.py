"""Line simulator: cameras publishing frames, and a watcher of what comes out."""
