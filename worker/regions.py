"""Where a defect frame's defect is: the regions of its defect map, and the 4x4 cell counted in a metric.

Only frames judged `defect` get regions (an ok frame's map points at nothing worth reporting),
and only when the model's serving signature has a map output (line_contracts.model).
"""

from __future__ import annotations

import logging
from typing import Optional

import numpy as np

from line_contracts.events import Localisation
from line_runtime.framing import Placement
from line_runtime.regions import find_regions, grid_cell

log = logging.getLogger(__name__)

GRID = 4  # the region metric's grid: GRID x GRID cells of the frame


class RegionFinder:
    """Turns one frame's defect map into its Localisation; max_regions 0 turns regions off."""

    def __init__(self, max_regions: int = 5, level: float = 0.5):
        self.max_regions = int(max_regions)
        self.level = float(level)
        self._warned = False

    @property
    def enabled(self) -> bool:
        """Whether the inference loop should ask the model for its maps at all."""
        return self.max_regions > 0

    def locate(self, defect_map: Optional[np.ndarray], placement: Placement) -> Optional[Localisation]:
        """The regions of one map [h', w'] in frame pixels; None when off, without a map, or if the map is unusable.

        `placement`: where the frame lies in the model input the map covers (line_runtime/framing.py).
        """
        if not self.enabled or defect_map is None:
            return None
        try:
            return find_regions(defect_map, placement.frame_height, placement.frame_width, self.level,
                                self.max_regions, placement)
        except ValueError as exc:  # a malformed map costs the event its regions, never the verdict
            if not self._warned:
                self._warned = True
                log.warning("defect map unusable, events go out without regions: %s", exc)
            return None


def strongest_cell(localisation: Optional[Localisation], frame_height: int,
                   frame_width: int) -> Optional[tuple[int, int]]:
    """(row, column) of the GRID x GRID frame cell holding the strongest region's centre, or None."""
    if localisation is None or not localisation.regions:
        return None
    return grid_cell(localisation.regions[0].box, frame_height, frame_width, GRID)
