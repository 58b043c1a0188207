"""The overlay PNG kept as evidence: the frame, the model's defect map as heat, the defect regions as boxes.

Drawn at the camera's frame size, because the event's boxes are in frame pixels. The decoded frame
is at the model's input size; when the camera's size differs it is resized back for the picture
(the original bytes are kept next to the overlay, so nothing is lost by that).
"""

from __future__ import annotations

from typing import Optional

import cv2
import numpy as np

from line_contracts.events import Localisation

_BOX_COLOUR = (0, 0, 255)   # BGR red: the strongest region
_OTHER_COLOUR = (0, 200, 255)  # BGR amber: further regions
_HEAT_ALPHA = 0.45          # how much of the heat covers the frame where the map is 1.0
# The encoding is most of the overlay's cost, paid on the worker's CPU: zlib level 1 with the "up" row
# filter took 7 ms for a 512x512 overlay against 19 ms at OpenCV's default (level 3, adaptive filters),
# for a file 20% larger (docs/performance.md, Evidence).
_PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP]


def render_overlay(image: np.ndarray, frame_height: int, frame_width: int, defect_map: Optional[np.ndarray],
                   localisation: Optional[Localisation]) -> bytes:
    """PNG bytes of the frame with the map's heat (when there is a map) and the region boxes (when any)."""
    gray = np.asarray(image, np.uint8)
    if gray.shape != (frame_height, frame_width):
        gray = cv2.resize(gray, (frame_width, frame_height), interpolation=cv2.INTER_LINEAR)
    picture = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    if defect_map is not None and np.size(defect_map):
        cells = np.nan_to_num(np.asarray(defect_map, np.float32), nan=0.0).clip(0.0, 1.0)
        heat_level = cv2.resize(cells, (frame_width, frame_height), interpolation=cv2.INTER_LINEAR)
        heat = cv2.applyColorMap((heat_level * 255).astype(np.uint8), cv2.COLORMAP_JET)
        weight = heat_level * _HEAT_ALPHA  # per pixel: the map's value decides how much heat covers the frame
        picture = cv2.blendLinear(heat, picture, weight, 1.0 - weight)
    if localisation is not None:
        thickness = max(1, round(min(frame_height, frame_width) / 256))
        for rank, region in enumerate(localisation.regions):
            b = region.box
            cv2.rectangle(picture, (b.x, b.y), (b.x + b.width - 1, b.y + b.height - 1),
                          _BOX_COLOUR if rank == 0 else _OTHER_COLOUR, thickness)
    ok, png = cv2.imencode(".png", picture, _PNG_PARAMS)
    if not ok:
        raise ValueError("OpenCV could not encode the overlay as PNG")
    return png.tobytes()
