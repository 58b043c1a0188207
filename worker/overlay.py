"""The overlay PNG kept as evidence: the frame, the model's defect map as heat, the defect regions as boxes.

Drawn at the camera's frame size, or smaller: with `max_side` (WORKER_EVIDENCE_OVERLAY_MAX_SIDE) the
long side is capped, the frame area-averaged down and the event's boxes (frame pixels) scaled with it.
The overlay is a visual aid; the original bytes are kept next to it at full resolution, so nothing is
lost by that, and a quarter of the pixels is a quarter of the encoding cost (docs/performance.md).

It is an indexed-colour (palette) PNG: 64 grey levels x 4 heat levels, plus red and amber for the
boxes. Encoding is most of what evidence costs the worker's CPU, and one byte per pixel deflates
about three times faster than RGB (a 512x512 overlay: ~3 ms instead of ~8 ms at zlib level 1;
docs/performance.md, Evidence). The frame loses its two lowest grey bits in the overlay only.
"""

from __future__ import annotations

import struct
import zlib
from typing import Optional

import cv2
import numpy as np

from line_contracts.events import Localisation
from line_runtime.framing import Placement

HEAT_LEVELS = 4             # map 0..1 shown in 4 steps: none, low, high, peak
_HEAT_ALPHA = 0.45          # how much of the heat colour covers the frame at the highest step
_GREYS = 62                 # grey steps of 4 levels each (0..61); indices 62 and 63 are the box colours
_RED, _AMBER = 62, 63       # the strongest region, further regions
_ZLIB_LEVEL = 1


def _palette() -> bytes:
    """256 RGB entries: index = heat * 64 + grey, each the grey blended with the JET colour of its heat."""
    jet = cv2.applyColorMap(np.linspace(0, 255, HEAT_LEVELS).astype(np.uint8)[:, None], cv2.COLORMAP_JET)[:, 0, ::-1]
    grey = np.minimum(np.arange(64) * 4 + 2, 255).astype(np.float32)
    out = np.zeros((HEAT_LEVELS, 64, 3), np.float32)
    for heat in range(HEAT_LEVELS):
        alpha = _HEAT_ALPHA * heat / (HEAT_LEVELS - 1)
        out[heat] = grey[:, None] * (1.0 - alpha) + jet[heat][None, :].astype(np.float32) * alpha
    out[0, _RED] = (255, 0, 0)
    out[0, _AMBER] = (255, 200, 0)
    return np.round(out).astype(np.uint8).tobytes()


_PALETTE = _palette()


def overlay_size(frame_height: int, frame_width: int, max_side: int = 0) -> tuple[int, int]:
    """(height, width) of the overlay: the frame's, its long side capped at max_side (0: no cap)."""
    long_side = max(frame_height, frame_width)
    if max_side <= 0 or long_side <= max_side:
        return frame_height, frame_width
    scale = max_side / long_side
    return max(1, round(frame_height * scale)), max(1, round(frame_width * scale))


def render_overlay(image: np.ndarray, frame_height: int, frame_width: int, defect_map: Optional[np.ndarray],
                   localisation: Optional[Localisation], max_side: int = 0,
                   placement: Optional[Placement] = None) -> bytes:
    """PNG bytes of the frame with the map's heat (when there is a map) and the region boxes (when any).

    `placement`: where the frame lay in the model input the map covers (a frame fitted with a
    mirrored border); the heat then shows only the frame's own part of the map. None: the map
    covers the frame.
    """
    height, width = overlay_size(frame_height, frame_width, max_side)
    gray = np.asarray(image, np.uint8)
    if gray.shape != (height, width):
        shrink = gray.shape[0] >= height and gray.shape[1] >= width  # area-average down, interpolate up
        gray = cv2.resize(gray, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    index = np.minimum(gray >> 2, _GREYS - 1)
    if defect_map is not None and np.size(defect_map):
        cells = np.nan_to_num(np.asarray(defect_map, np.float32), nan=0.0).clip(0.0, 1.0)
        if placement is not None and (placement.height, placement.width) != (placement.input_height,
                                                                             placement.input_width):
            over_input = cv2.resize(cells, (placement.input_width, placement.input_height),
                                    interpolation=cv2.INTER_LINEAR)
            cells = np.ascontiguousarray(placement.crop_content(over_input))
        level = cv2.resize(cells, (width, height), interpolation=cv2.INTER_LINEAR)
        heat = (level * (HEAT_LEVELS - 1) + 0.5).astype(np.uint8)
        index = index + (heat << 6)
    if localisation is not None:
        sx, sy = width / frame_width, height / frame_height  # boxes are in frame pixels
        thickness = max(1, round(min(height, width) / 256))
        for rank, region in enumerate(localisation.regions):
            b = region.box
            x0, y0 = int(b.x * sx), int(b.y * sy)
            x1 = max(x0, int(np.ceil((b.x + b.width) * sx)) - 1)
            y1 = max(y0, int(np.ceil((b.y + b.height) * sy)) - 1)
            cv2.rectangle(index, (x0, y0), (x1, y1), _RED if rank == 0 else _AMBER, thickness)
    return _indexed_png(np.ascontiguousarray(index, np.uint8))


def _indexed_png(index: np.ndarray) -> bytes:
    """A PNG of an 8-bit palette image with _PALETTE (colour type 3, filter none on every row)."""
    height, width = index.shape
    rows = np.zeros((height, width + 1), np.uint8)  # a leading 0 per row: filter type "none"
    rows[:, 1:] = index

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 3, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"PLTE", _PALETTE)
            + chunk(b"IDAT", zlib.compress(rows.tobytes(), _ZLIB_LEVEL)) + chunk(b"IEND", b""))
