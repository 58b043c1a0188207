"""Defect regions: the connected areas of a model's defect map, as boxes in frame pixels.

The map covers the whole frame (the working size is the frame resized, never padded or
cropped: training/frames.py), so map cell (r, c) is the frame rectangle
[c*W/w', (c+1)*W/w') x [r*H/h', (r+1)*H/h'). A region is a 8-connected set of cells at or above
`level`; the cell holding the map's peak always makes a region, even below `level`, because a
frame judged defective must point somewhere.
"""

from __future__ import annotations

import cv2
import numpy as np

from line_contracts.events import Box, DefectRegion, Localisation


def find_regions(defect_map: np.ndarray, frame_height: int, frame_width: int, level: float = 0.5,
                 max_regions: int = 5) -> Localisation:
    """Regions of one map [h', w'] (values 0..1), strongest peak first, at most `max_regions`."""
    cells = np.asarray(defect_map, np.float32)
    if cells.ndim != 2 or cells.size == 0:
        raise ValueError(f"a defect map must be 2-D and non-empty, got shape {cells.shape}")
    if max_regions < 1:
        raise ValueError(f"max_regions must be at least 1, got {max_regions}")
    cells = np.nan_to_num(cells, nan=0.0, posinf=1.0, neginf=0.0).clip(0.0, 1.0)
    rows, cols = cells.shape
    above = (cells >= level).astype(np.uint8)
    above[np.unravel_index(int(np.argmax(cells)), cells.shape)] = 1
    count, labels, stats, _ = cv2.connectedComponentsWithStats(above, connectivity=8)
    cell_h, cell_w = frame_height / rows, frame_width / cols
    regions = []
    for label in range(1, count):
        peak = float(cells[labels == label].max())
        c0, r0, cw, rh, n_cells = (int(v) for v in stats[label])
        x0, y0 = int(c0 * cell_w), int(r0 * cell_h)
        x1 = min(frame_width, int(np.ceil((c0 + cw) * cell_w)))
        y1 = min(frame_height, int(np.ceil((r0 + rh) * cell_h)))
        regions.append(DefectRegion(box=Box(x=x0, y=y0, width=max(1, x1 - x0), height=max(1, y1 - y0)),
                                    peak=peak, area_px=max(1, int(round(n_cells * cell_h * cell_w)))))
    regions.sort(key=lambda r: -r.peak)
    return Localisation(map_height=rows, map_width=cols, regions=regions[:max_regions])


def grid_cell(box: Box, frame_height: int, frame_width: int, grid: int = 4) -> tuple[int, int]:
    """(row, column) of the `grid` x `grid` cell of the frame holding the box's centre."""
    cx, cy = box.x + box.width / 2.0, box.y + box.height / 2.0
    return (min(grid - 1, int(cy * grid / frame_height)), min(grid - 1, int(cx * grid / frame_width)))
