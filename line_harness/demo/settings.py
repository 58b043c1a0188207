"""What `make demo` (deploy/demo.sh) can be told: DEMO_* environment variables.

The Kafka connection is the plain KAFKA_* set of line_runtime.settings (KAFKA_BOOTSTRAP_SERVERS,
KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_*, KAFKA_SSL_*): set KAFKA_BOOTSTRAP_SERVERS to use an existing
broker instead of starting the local one. The worker and the simulator can be tuned further with
their own WORKER_* / SIM_* variables, which win over the demo's defaults.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from line_harness.paths import REPO


class DemoSettings(BaseSettings):
    """Settings of the local demo; env var = DEMO_ + field upper-cased."""

    model_config = SettingsConfigDict(env_prefix="DEMO_", extra="ignore", validate_default=True)

    duration_s: float = Field(90.0, gt=0, description="Seconds the cameras publish frames (Ctrl-C stops earlier).")
    model: Literal["quick", "tiny"] = Field(
        "quick", description="quick: the EfficientNet-B0 demo model trained on synthetic frames (built once into "
                             "models/demo, a few minutes on 2 cores); tiny: a fixed blob detector built in seconds "
                             "into models/demo-tiny (for CI).")
    model_path: Optional[Path] = Field(None, description="Serve this model base or version folder instead "
                                       "(nothing is built).")
    lines: int = Field(2, ge=1, le=20, description="Simulated production lines.")
    cameras_per_line: int = Field(2, ge=1, le=20, description="Simulated cameras per line.")
    fps: float = Field(2.0, gt=0, le=200, description="Frames per second per camera (4 cameras x 2 = 8 frames/s: "
                       "the quick model judges about 7-12 frames/s on 2 busy CPU cores, so it keeps up).")
    defect_scale: float = Field(4.0, ge=1, le=8, description="Synthetic defect size; the quick demo model is "
                                "trained on defect scale 4 (see docs/training.md).")
    defect_rate: float = Field(0.05, ge=0, le=1, description="Fraction of simulated frames showing a defect.")
    seed: int = Field(7, description="Seed of the simulated frames. The quick demo model trains on seed 0, so the "
                      "default 7 streams frames it never saw (its live precision and recall are honest).")
    corrupt_rate: float = Field(0.02, ge=0, le=1, description="Fraction of frames replaced by a corrupt frame "
                                "(they go to the dead-letter topic).")
    frame_size: str = Field("512x512", pattern=r"^\d+x\d+$", description="Simulated frame size WxH.")
    partitions: int = Field(4, ge=1, le=64, description="Partitions of the frames and results topics.")
    drain_s: float = Field(30.0, ge=0, description="After the cameras stop, wait at most this long for the worker "
                           "to judge the frames still queued.")
    worker_ready_timeout_s: float = Field(300.0, gt=0, description="Give up if the worker is not ready "
                                          "(model loaded and warmed up) within this time.")
    prometheus: bool = Field(True, description="Also run Prometheus with the project's config and rules when "
                             "the `prometheus` binary is installed.")
    evidence: bool = Field(True, description="Keep evidence (defect frames, overlays, events) in a local object "
                           "store (SeaweedFS, built once by `make evidence-server`) and serve the operator page.")
    viewer_port: int = Field(8088, ge=1, le=65535, description="Port of the operator page on 127.0.0.1 (another "
                             "free one when it is taken).")
    topic_prefix: str = Field("", pattern=r"^[A-Za-z0-9._-]*$", description="Prefix of the demo's topic and "
                              "consumer-group names, e.g. `demo-`, to keep clear of a shared broker's real topics.")
    run_dir: Path = Field(REPO / "run" / "demo", description="Folder of the demo's broker data, Prometheus data, "
                          "evidence store, logs and summary.json (its kafka/, prometheus/ and logs/ are replaced at "
                          "each start; evidence/ is kept).")
