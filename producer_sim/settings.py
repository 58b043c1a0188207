"""Simulator settings: env vars with prefix SIM_, overridden by command-line flags."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from line_contracts import topics
from line_contracts.frame import Encoding
from line_runtime.settings import KafkaClientSettings

LoadShapeName = Literal["steady", "ramp", "burst"]


class SimSettings(KafkaClientSettings):
    """Everything `python -m producer_sim run|watch` can be told; env var = SIM_ + field upper-cased."""

    model_config = SettingsConfigDict(env_prefix="SIM_", extra="ignore", validate_default=True)

    frames_topic: str = Field(topics.FRAMES_TOPIC, description="Topic the simulated cameras publish frames to.")
    results_topic: str = Field(topics.RESULTS_TOPIC, description="Topic `watch` reads result events from.")
    dead_letter_topic: str = Field(topics.DEAD_LETTER_TOPIC, description="Topic `watch` reads dead-letter records from.")

    # --- the line
    lines: int = Field(1, ge=1, le=1000, description="Number of production lines (line-1, line-2, ...).")
    cameras_per_line: int = Field(1, ge=1, le=1000, description="Cameras per line (line-1-cam-1, ...).")
    fps: float = Field(10.0, gt=0, le=10000, description="Frames per second per camera (nominal rate of the load shape).")
    duration_s: Optional[float] = Field(None, gt=0, description="Stop after this many seconds (unset: until Ctrl-C or frames).")
    frames: Optional[int] = Field(None, ge=1, description="Stop after this many frames in total, all cameras together.")

    # --- images
    source_dir: Optional[Path] = Field(None, description="Folder of images (DAGM 2007 layout, defect/ + ok/, or plain); "
                                       "unset = synthetic textures, no files needed.")
    source_split: Optional[str] = Field(None, description="DAGM split to read from source_dir, e.g. Train or Test "
                                        "(unset: all).")
    defect_rate: Optional[float] = Field(None, ge=0, le=1, description="Fraction of frames showing a defect. Synthetic "
                                         "default 0.1; labelled folders are sampled to match it (unset: folder's mix).")
    defect_scale: float = Field(1.0, ge=1, le=8, description="Synthetic defect size: 1 = DAGM-like thin scratches; "
                                "larger widens and lengthens them (the quick demo model is trained at 4).")
    seed: int = Field(0, description="Seed for the synthetic images, the frame pool order and corrupt frames.")
    pool_size: int = Field(200, ge=1, le=100000, description="Frames encoded once at start and cycled through, so "
                           "encoding never limits the publish rate.")
    encoding: Encoding = Field(Encoding.PNG, description="Frame encoding: png, jpeg or raw (mono8).")
    jpeg_quality: int = Field(90, ge=1, le=100, description="JPEG quality when encoding is jpeg.")
    png_compression: int = Field(3, ge=0, le=9, description="PNG compression level 0-9 when encoding is png.")
    frame_width: Optional[int] = Field(None, gt=0, le=65535, description="Resize frames to this width (unset: "
                                       "source size; synthetic 512).")
    frame_height: Optional[int] = Field(None, gt=0, le=65535, description="Resize frames to this height (unset: "
                                        "source size; synthetic 512).")

    # --- pacing
    load_shape: LoadShapeName = Field("steady", description="steady: fps throughout; ramp: from ramp_start_fraction*fps "
                                      "up to fps over ramp_s; burst: burst_factor*fps for burst_s every burst_every_s.")
    ramp_s: float = Field(30.0, gt=0, description="Length of the ramp (load_shape=ramp), seconds.")
    ramp_start_fraction: float = Field(0.1, gt=0, le=1, description="Ramp starts at this fraction of fps.")
    burst_every_s: float = Field(10.0, gt=0, description="A burst starts every this many seconds (load_shape=burst).")
    burst_s: float = Field(2.0, gt=0, description="Length of each burst, seconds; must be < burst_every_s.")
    burst_factor: float = Field(3.0, gt=0, description="Rate multiplier during a burst.")
    max_rate: bool = Field(False, description="Ignore fps and publish as fast as the client allows (capacity tests).")
    max_in_flight: int = Field(2000, ge=1, description="Frames handed to the client but not yet acknowledged before "
                               "sending waits; bounds memory when the broker is slower than the schedule.")

    # --- faults
    corrupt_rate: float = Field(0.0, ge=0, le=1, description="Fraction of frames replaced by a bad frame "
                                "(producer_sim.faults), to exercise the worker's dead-letter path.")
    corrupt_kinds: Optional[str] = Field(None, description="Comma-separated bad-frame kinds to draw from "
                                         "(unset: all of producer_sim.faults.BAD_FRAME_KINDS).")

    # --- producer
    acks: Literal["all", "1", "0"] = Field("all", description="Producer acks: all (no loss), 1 or 0.")
    linger_ms: int = Field(5, ge=0, le=60000, description="Producer linger: wait this long to fill a batch.")
    batch_size: int = Field(512 * 1024, ge=1024, description="Producer batch size in bytes; keep below the topic's "
                            "max.message.bytes.")
    compression_type: Literal["none", "gzip", "lz4", "zstd", "snappy"] = Field(
        "none", description="Producer compression; none by default because PNG/JPEG frames are already compressed.")
    max_request_size: int = Field(10 * 1024 * 1024, ge=1024, description="Largest record the producer sends, bytes; "
                                  "same as the frames topic's max.message.bytes from the topic helper (10 MiB).")
    delivery_timeout_s: float = Field(60.0, gt=0, description="A frame not acknowledged within this time counts lost.")
    flush_timeout_s: float = Field(30.0, gt=0, description="At the end (or Ctrl-C), wait this long for in-flight "
                                   "frames; the rest count as lost.")
    status_interval_s: float = Field(1.0, gt=0, description="Seconds between live status lines.")

    # --- watch
    read_committed: bool = Field(False, description="watch: read only committed transactional results "
                                 "(use with a worker in exactly_once mode).")

    @model_validator(mode="after")
    def _check_shape(self):
        if self.load_shape == "burst" and self.burst_s >= self.burst_every_s:
            raise ValueError("SIM_BURST_S must be shorter than SIM_BURST_EVERY_S")
        if (self.frame_width is None) != (self.frame_height is None):
            raise ValueError("set both SIM_FRAME_WIDTH and SIM_FRAME_HEIGHT (--frame-size WxH), or neither")
        return self

    def camera_ids(self) -> list[tuple[str, str]]:
        """(line_id, camera_id) of every simulated camera, line by line."""
        return [(f"line-{ln}", f"line-{ln}-cam-{c}")
                for ln in range(1, self.lines + 1) for c in range(1, self.cameras_per_line + 1)]

    def producer_kwargs(self) -> dict:
        """KafkaProducer keyword arguments for publishing frames."""
        kw = self.kafka_client_kwargs()
        kw.update(
            acks=-1 if self.acks == "all" else int(self.acks),
            linger_ms=self.linger_ms,
            batch_size=self.batch_size,
            compression_type=None if self.compression_type == "none" else self.compression_type,
            max_request_size=self.max_request_size,
            delivery_timeout_ms=int(self.delivery_timeout_s * 1000),
            request_timeout_ms=min(30000, int(self.delivery_timeout_s * 1000)),
            # send() blocks at most this long waiting for topic metadata; bounded by the connect timeout.
            max_block_ms=int(self.kafka_connect_timeout_s * 1000),
            client_id="producer-sim",
        )
        return kw
