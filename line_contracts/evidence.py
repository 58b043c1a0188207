"""Where a frame's evidence lives in the object store: one key layout for the writer and every reader.

    <line>/<camera>/<YYYY-MM-DD>/<event_id>/frame.<png|jpg|raw>   the bytes the camera sent
    <line>/<camera>/<YYYY-MM-DD>/<event_id>/overlay.png            frame + defect map + boxes
    <line>/<camera>/<YYYY-MM-DD>/<event_id>/event.json             the result event

The date is the frame's capture date (UTC) and the event id is deterministic, so a redelivered
frame overwrites its own objects and never adds a second copy. Line and camera ids are limited to
letters, digits and `_ . : -` by the frame contract, so they are safe as key parts.
"""

from __future__ import annotations

import datetime as dt

from line_contracts.frame import Encoding

FRAME_SUFFIX = {Encoding.PNG: "png", Encoding.JPEG: "jpg", Encoding.RAW: "raw"}
OVERLAY_NAME = "overlay.png"
EVENT_NAME = "event.json"


def evidence_prefix(line_id: str, camera_id: str, capture_time_ns: int, event_id: str) -> str:
    """The folder-like key prefix (ending in '/') of one frame's evidence."""
    day = dt.datetime.fromtimestamp(capture_time_ns / 1e9, tz=dt.timezone.utc).strftime("%Y-%m-%d")
    return f"{line_id}/{camera_id}/{day}/{event_id}/"


def frame_object_name(encoding: Encoding) -> str:
    """Object name of the original frame bytes, by encoding."""
    return f"frame.{FRAME_SUFFIX[Encoding(encoding)]}"
