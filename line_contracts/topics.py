"""Default topic and consumer-group names (overridable through each deployable's settings)."""

FRAMES_TOPIC = "line.frames"
RESULTS_TOPIC = "line.results"
DEAD_LETTER_TOPIC = "line.frames.dlq"
WORKER_GROUP = "inspection-worker"
