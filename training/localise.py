"""Where the defect is: the defect map an exported model saved beside its score, and how well it points.

Every segdec model (also one trained from image-level labels only: the multiple-instance loss
makes its top cell the evidence for the frame's score) exports a SavedModel signature
`defect_map`: uint8 frames [N, H, W, 1] -> float32 [N, h', w'] cell scores in 0..1, one cell
per `backbone_stride` pixels of the working size. Newer models may also return the map as the
serving signature's second output (line_contracts.model.MAP_OUTPUT_KEY); either is read here.

Scoring against a true mask (`frame_hit`, `cell_pixel_counts`) uses the worker's own region
finder (line_runtime.regions), so the numbers describe the boxes the line will publish.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import numpy as np

from line_contracts.events import Localisation
from line_contracts.model import INPUT_KEY, MAP_OUTPUT_KEY, SAVED_MODEL_DIR, SIGNATURE_NAME
from line_runtime.model import ModelLoadError, read_metadata
from training.export import DEFECT_MAP_KEY, DEFECT_MAP_SIGNATURE


def load_defect_map(version_dir: Path) -> Callable[[np.ndarray], np.ndarray]:
    """A callable: uint8 frames [N, H, W] or [N, H, W, 1] -> defect maps [N, h', w'] in 0..1."""
    import tensorflow as tf

    version_dir = Path(version_dir)
    loaded = tf.saved_model.load(str(version_dir / SAVED_MODEL_DIR))
    if DEFECT_MAP_SIGNATURE in loaded.signatures:
        signature, key = loaded.signatures[DEFECT_MAP_SIGNATURE], DEFECT_MAP_KEY
    elif SIGNATURE_NAME in loaded.signatures and MAP_OUTPUT_KEY in loaded.signatures[SIGNATURE_NAME].structured_outputs:
        signature, key = loaded.signatures[SIGNATURE_NAME], MAP_OUTPUT_KEY
    else:
        raise ModelLoadError(f"{version_dir} has no {DEFECT_MAP_SIGNATURE!r} signature (a tiny or global-design model); retrain to get one")

    def run(frames: np.ndarray) -> np.ndarray:
        _ = loaded  # keep the restored variables alive with the function
        frames = np.asarray(frames, np.uint8)
        frames = frames[..., None] if frames.ndim == 3 else frames
        return signature(**{INPUT_KEY: tf.constant(frames)})[key].numpy()

    return run


def try_load_defect_map(version_dir: Path) -> Optional[Callable[[np.ndarray], np.ndarray]]:
    """`load_defect_map`, or None for a model without a map (tiny, global design, no SavedModel)."""
    if not (Path(version_dir) / SAVED_MODEL_DIR).is_dir():
        return None
    try:
        return load_defect_map(version_dir)
    except ModelLoadError:
        return None


def peak_in_frame(version_dir: Path, defect_map: np.ndarray) -> tuple[int, int]:
    """(row, column) in frame pixels of the centre of the map's highest cell (`peak_cell`)."""
    meta = read_metadata(Path(version_dir))
    row, col = peak_cell(defect_map)
    return (int((row + 0.5) * meta.input_height / defect_map.shape[0]), int((col + 0.5) * meta.input_width / defect_map.shape[1]))


def frame_hit(localisation: Localisation, mask: np.ndarray) -> bool:
    """True when the strongest region's box holds at least one true-defect pixel of `mask` (frame size)."""
    if not localisation.regions:
        return False
    box = localisation.regions[0].box
    return bool(np.any(mask[box.y : box.y + box.height, box.x : box.x + box.width]))


def peak_cell(defect_map: np.ndarray) -> tuple[int, int]:
    """(row, column) of the map's highest cell ([h', w'] or [h', w', 1]).

    A saturated map (sigmoid = 1.0) or a coarse view's block holds the maximum in several cells;
    argmax would always take the top-left one, so the tied cell nearest their centroid stands for them.
    """
    rows, cols = np.asarray(defect_map).shape[:2]
    cells = np.asarray(defect_map, np.float64).reshape(rows, cols)
    tied = np.argwhere(cells >= cells.max() - 1e-6)
    row, col = tied[int(np.argmin(np.sum((tied - tied.mean(axis=0)) ** 2, axis=1)))]
    return int(row), int(col)


def peak_distance(defect_map: np.ndarray, mask: np.ndarray) -> float:
    """Frame pixels from the centre of the map's highest cell (`peak_cell`) to the nearest true-defect pixel (0 on it).

    The hit rate asks whether the strongest region's box touches the defect, and a box grows with
    the region; this asks where the single strongest cell is, which a map trained from image-level
    labels may put a few cells beside the defect.
    """
    rows, cols = np.asarray(defect_map).shape[:2]
    row, col = peak_cell(defect_map)
    y, x = (row + 0.5) * mask.shape[0] / rows, (col + 0.5) * mask.shape[1] / cols
    if mask[min(int(y), mask.shape[0] - 1), min(int(x), mask.shape[1] - 1)]:
        return 0.0
    ys, xs = np.nonzero(mask)
    return float(np.sqrt(np.min((ys + 0.5 - y) ** 2 + (xs + 0.5 - x) ** 2)))


def cell_of_pixel(map_shape: tuple[int, int], frame_shape: tuple[int, int]) -> np.ndarray:
    """[H, W] index of the map cell covering each frame pixel (the geometry line_runtime.regions uses)."""
    (rows, cols), (height, width) = map_shape, frame_shape
    r = np.arange(height) * rows // height
    c = np.arange(width) * cols // width
    return r[:, None] * cols + c[None, :]


def cell_pixel_counts(defect_map: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cell values, true-defect pixels per cell, clear pixels per cell): the map upsampled to the frame.

    Each frame pixel takes its cell's value (nearest), so per-pixel ROC-AUC / AP over these
    weighted cells equals the per-pixel score over the full-size frame, at a fraction of the cost.
    """
    cells = np.nan_to_num(np.asarray(defect_map, np.float64), nan=0.0, posinf=1.0, neginf=0.0).clip(0.0, 1.0)
    index = cell_of_pixel(cells.shape, mask.shape).ravel()
    total = np.bincount(index, minlength=cells.size).astype(np.float64)
    positive = np.bincount(index, weights=(mask.ravel() > 0).astype(np.float64), minlength=cells.size)
    return cells.ravel(), positive, total - positive


def mask_box(mask: np.ndarray) -> Optional[tuple[int, int, int, int]]:
    """(x, y, width, height) of the mask's bounding box, or None for an empty mask."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)


DEFINITION = ("localization_hit_rate: share of the defective frames that have a true mask (all of them, whatever "
              "the verdict) whose strongest region (line_runtime.regions.find_regions on the model's map, at the frame's "
              "size) holds at least one mask pixel; peak_distance_px_median: median over those frames of the distance "
              "from the centre of the map's highest cell to the nearest mask pixel, in frame pixels (0 = on the defect), "
              "peak_within_one_cell: the share of them where it is at most one cell's height; pixel_roc_auc / pixel_ap: the map upsampled to the frame (each pixel "
              "takes its cell's value) against the mask, over the pixels of masked defective frames and of ok frames")


class LocalisationTally:
    """Collects, frame by frame, the regions of the model's map and how they meet the true masks."""

    def __init__(self, level: Optional[float] = None, max_regions: int = 5) -> None:
        import inspect

        from line_runtime.regions import find_regions

        # None = the worker's own default, read from the function so the two cannot drift apart
        self.level = float(inspect.signature(find_regions).parameters["level"].default if level is None else level)
        self.max_regions = max_regions
        self.maps: list[np.ndarray] = []           # float16 [h', w'] per frame, for the report's overlays
        self.localisations: list[Localisation] = []
        self.hits: list[Optional[bool]] = []       # None: no true mask to judge by
        self._cells: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.frame_shape: tuple[int, int] = (0, 0)  # the model's input size: boxes are in these pixels
        self._box_fraction: list[float] = []  # strongest box area / frame area, over judged frames
        self._peak_distance: list[float] = []  # peak_distance, over masked defective frames

    def add(self, defect_map: np.ndarray, label: int, mask: Optional[np.ndarray], frame_shape: tuple[int, int]) -> Localisation:
        """Regions of one frame's map; `mask` is the frame-size truth (None when unknown; all clear for ok frames)."""
        from line_runtime.regions import find_regions

        loc = find_regions(defect_map, frame_shape[0], frame_shape[1], level=self.level, max_regions=self.max_regions)
        self.frame_shape = tuple(frame_shape)  # type: ignore[assignment]
        self.maps.append(np.asarray(defect_map, np.float16))
        self.localisations.append(loc)
        if label == 0:
            mask = np.zeros(frame_shape, np.uint8)
        has_truth = mask is not None and (label == 0 or bool(mask.any()))
        self.hits.append(frame_hit(loc, mask) if has_truth and label == 1 else None)
        if has_truth:
            self._cells.append(cell_pixel_counts(defect_map, mask))
        if has_truth and label == 1:
            self._peak_distance.append(peak_distance(defect_map, mask))
            if loc.regions:
                box = loc.regions[0].box
                self._box_fraction.append(box.width * box.height / float(frame_shape[0] * frame_shape[1]))
        return loc

    def summary(self, labels: np.ndarray, judged_defect: np.ndarray, files: list[str]) -> dict:
        """The localisation block of metrics.json (rates are None when no defective frame has a mask)."""
        from training import metrics

        judged = [i for i, h in enumerate(self.hits) if h is not None]
        judged_found = [i for i in judged if judged_defect[i]]
        hits = sum(bool(self.hits[i]) for i in judged)
        hits_found = sum(bool(self.hits[i]) for i in judged_found)
        has_positive_pixels = bool(judged)
        values, pos, neg = (np.concatenate(parts) for parts in zip(*self._cells)) if self._cells else (np.zeros(0),) * 3
        shape = self.maps[0].shape if self.maps else (0, 0)
        return {
            "definition": DEFINITION,
            "region_level": self.level, "max_regions": self.max_regions, "map_size": list(shape),
            "defective_frames": int(np.sum(labels == 1)), "defective_with_mask": len(judged), "hits": hits,
            "hit_rate": hits / len(judged) if judged else None,
            "judged_defect_with_mask": len(judged_found), "hits_judged_defect": hits_found,
            "hit_rate_judged_defect": hits_found / len(judged_found) if judged_found else None,
            # a box as big as the frame would always hit: the box size says the hits are earned
            "strongest_box_frame_share_median": float(np.median(self._box_fraction)) if self._box_fraction else None,
            # where the single strongest cell is: frame pixels to the nearest defect pixel (0 = on it)
            "peak_distance_px_median": float(np.median(self._peak_distance)) if self._peak_distance else None,
            "peak_within_one_cell": (float(np.mean(np.array(self._peak_distance) <= self.frame_shape[0] / shape[0]))
                                     if self._peak_distance else None),
            "pixel_roc_auc": metrics.weighted_roc_auc(values, pos, neg) if has_positive_pixels else None,
            "pixel_ap": metrics.weighted_average_precision(values, pos, neg) if has_positive_pixels else None,
            "misses": [files[i] for i in judged if not self.hits[i]],
        }
