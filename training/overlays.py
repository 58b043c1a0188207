"""Overlay pictures for the evaluation report: the frame, the model's defect map as heat, the
regions the worker would publish as boxes (strongest green, others yellow) and the true mask's
outline (red), encoded as PNG for embedding in report.html (one self-contained file).
"""

from __future__ import annotations

import base64
from typing import Optional

import cv2
import numpy as np

from line_contracts.events import Localisation
from training.localise import cell_of_pixel

STRONGEST = (0, 200, 0)  # BGR
OTHER = (0, 220, 255)
TRUTH = (0, 0, 255)
HEAT_ALPHA = 0.45  # heat covers at most this share of a pixel, where the map is 1


def overlay(frame: np.ndarray, defect_map: Optional[np.ndarray], localisation: Optional[Localisation],
            mask: Optional[np.ndarray], width: int = 256) -> np.ndarray:
    """BGR picture `width` pixels wide: frame, heat where the map is high, boxes, mask outline."""
    picture = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR).astype(np.float32)
    if defect_map is not None:
        cells = np.nan_to_num(np.asarray(defect_map, np.float32)).clip(0.0, 1.0)
        upsampled = cells.ravel()[cell_of_pixel(cells.shape, frame.shape)]  # the cells the regions are made of
        heat = cv2.applyColorMap((upsampled * 255).astype(np.uint8), cv2.COLORMAP_JET).astype(np.float32)
        weight = (HEAT_ALPHA * upsampled)[..., None]
        picture = picture * (1 - weight) + heat * weight
    picture = picture.clip(0, 255).astype(np.uint8)
    scale = width / frame.shape[1]
    thickness = max(1, int(round(1 / scale)))  # about one output pixel after the shrink
    if mask is not None and mask.any():
        contours, _ = cv2.findContours((mask > 0).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(picture, contours, -1, TRUTH, 2 * thickness)
    if localisation is not None:
        for k, region in reversed(list(enumerate(localisation.regions))):  # strongest drawn last, on top
            b = region.box
            cv2.rectangle(picture, (b.x, b.y), (b.x + b.width - 1, b.y + b.height - 1), STRONGEST if k == 0 else OTHER,
                          (3 if k == 0 else 2) * thickness)
    height = max(1, int(round(frame.shape[0] * scale)))
    return cv2.resize(picture, (width, height), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


def png_data_uri(picture: np.ndarray) -> str:
    """A `data:image/png;base64,...` URI of a BGR or gray picture, for an <img src> in a single-file report."""
    ok, buf = cv2.imencode(".png", picture)
    if not ok:
        raise ValueError(f"OpenCV could not encode a {picture.shape} picture as PNG")
    return "data:image/png;base64," + base64.b64encode(buf.tobytes()).decode("ascii")
