"""Defect regions: the connected areas of a model's defect map, as boxes in frame pixels.

The map covers the whole model input, so map cell (r, c) is the input rectangle
[c*W/w', (c+1)*W/w') x [r*H/h', (r+1)*H/h'). A frame of the model's size fills that input; one of
another size sits in it as its `Placement` says (line_runtime/framing.py): stretched over all of
it, or fitted into a centred part with a mirrored border. Cells wholly in that border are not
read (a region there would be a mirror image of the defect), and boxes are given in the frame's
own pixels. A region is a 8-connected set of cells at or above `level`; the cell holding the
map's peak always makes a region, even below `level`, because a frame judged defective must point
somewhere.
"""

from __future__ import annotations

import cv2
import numpy as np

from line_contracts.events import Box, DefectRegion, Localisation
from line_runtime.framing import Placement


def find_regions(defect_map: np.ndarray, frame_height: int, frame_width: int, level: float = 0.5,
                 max_regions: int = 5, placement: Placement | None = None) -> Localisation:
    """Regions of one map [h', w'] (values 0..1), strongest peak first, at most `max_regions`.

    `placement`: where the frame lies in the model input; None when it fills it.
    """
    cells = np.asarray(defect_map, np.float32)
    if cells.ndim != 2 or cells.size == 0:
        raise ValueError(f"a defect map must be 2-D and non-empty, got shape {cells.shape}")
    if max_regions < 1:
        raise ValueError(f"max_regions must be at least 1, got {max_regions}")
    cells = np.nan_to_num(cells, nan=0.0, posinf=1.0, neginf=0.0).clip(0.0, 1.0)
    rows, cols = cells.shape
    where = placement or Placement.whole(frame_height, frame_width)
    if (where.frame_height, where.frame_width) != (frame_height, frame_width):
        raise ValueError(f"placement is for a {where.frame_width}x{where.frame_height} frame, not "
                         f"{frame_width}x{frame_height}")
    coverage = where.cell_coverage(rows, cols)
    cells = np.where(coverage > 0, cells, 0.0)
    above = (cells >= level).astype(np.uint8)
    above[np.unravel_index(int(np.argmax(np.where(coverage > 0, cells, -1.0))), cells.shape)] = 1
    count, labels, stats, _ = cv2.connectedComponentsWithStats(above, connectivity=8)
    cell_h, cell_w = where.input_height / rows, where.input_width / cols
    frame_cell_px = cell_h * cell_w * (frame_height / where.height) * (frame_width / where.width)
    regions = []
    for label in range(1, count):
        members = labels == label
        peak = float(cells[members].max())
        c0, r0, cw, rh, _ = (int(v) for v in stats[label])
        fx0, fy0 = where.to_frame(c0 * cell_w, r0 * cell_h)
        fx1, fy1 = where.to_frame((c0 + cw) * cell_w, (r0 + rh) * cell_h)
        x0, y0 = min(int(fx0), frame_width - 1), min(int(fy0), frame_height - 1)
        x1, y1 = min(frame_width, int(np.ceil(fx1 - 1e-9))), min(frame_height, int(np.ceil(fy1 - 1e-9)))
        area = float(coverage[members].sum()) * frame_cell_px
        regions.append(DefectRegion(box=Box(x=x0, y=y0, width=max(1, x1 - x0), height=max(1, y1 - y0)),
                                    peak=peak, area_px=max(1, int(round(area)))))
    regions.sort(key=lambda r: -r.peak)
    return Localisation(map_height=rows, map_width=cols, regions=regions[:max_regions])


def grid_cell(box: Box, frame_height: int, frame_width: int, grid: int = 4) -> tuple[int, int]:
    """(row, column) of the `grid` x `grid` cell of the frame holding the box's centre."""
    cx, cy = box.x + box.width / 2.0, box.y + box.height / 2.0
    return (min(grid - 1, int(cy * grid / frame_height)), min(grid - 1, int(cx * grid / frame_width)))
