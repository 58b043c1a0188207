"""Check a training set before any training time is spent; every error names the path and what
was expected.

Reads every image once (the decoded pixels are handed on to training, so the check costs no
extra decode): unreadable, colour or 16-bit files, masks that do not match their image, an
empty or missing class folder, a single class, or fewer than MIN_PER_CLASS images of a class
stop the run with one message listing the offending paths.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from surface_images.datasets import DatasetError, LabeledImage, read_grayscale

MIN_PER_CLASS = 20
MAX_LISTED = 5


@dataclass
class CheckedData:
    """Labelled images that passed the check, decoded."""

    items: list[LabeledImage]
    images: list[np.ndarray]
    masks: int  # defective images with a mask

    @property
    def sizes(self) -> list[tuple[int, int]]:
        """(height, width) of every image."""
        return [tuple(im.shape) for im in self.images]  # type: ignore[misc]


def check_training_data(root: Path, items: Sequence[LabeledImage], min_per_class: int = MIN_PER_CLASS) -> CheckedData:
    """Validate and decode `items` found under `root`; DatasetError naming the paths otherwise."""
    labelled = [it for it in items if it.label is not None]
    _check_classes(Path(root), labelled, min_per_class)
    images, problems = [], []
    for it in labelled:
        try:
            image = read_grayscale(it.path)
        except DatasetError as exc:
            problems.append(str(exc))
            continue
        images.append(image)
        if it.mask_path is not None:
            problems.extend(_check_mask(it, image.shape))
    if problems:
        listed = "\n  ".join(problems[:MAX_LISTED])
        more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
        raise DatasetError(f"{root}: {len(problems)} file(s) cannot be used for training; nothing was trained:\n  {listed}{more}")
    masks = sum(1 for it in labelled if it.label == 1 and (it.mask_path is not None or it.ellipse is not None))
    return CheckedData(labelled, images, masks)


def _check_classes(root: Path, labelled: Sequence[LabeledImage], min_per_class: int) -> None:
    by_label = {0: [it for it in labelled if it.label == 0], 1: [it for it in labelled if it.label == 1]}
    names = {1: "defect", 0: "ok"}
    for label in (1, 0):
        if not by_label[label]:
            other = names[1 - label]
            raise DatasetError(
                f"{root}: no {names[label]} images (found {len(by_label[1 - label])} {other}); training needs both classes: "
                f"put images in {root / names[label]}/ (folder layout) or use a DAGM split with both labels"
            )
    for label in (1, 0):
        count = len(by_label[label])
        if count < min_per_class:
            folder = by_label[label][0].path.parent
            raise DatasetError(
                f"{folder}: only {count} {names[label]} image(s); expected at least {min_per_class} per class "
                "(a held-out part must remain after the train/validation split)"
            )


def _check_mask(item: LabeledImage, shape: tuple[int, ...]) -> list[str]:
    try:
        mask = read_grayscale(item.mask_path)  # type: ignore[arg-type]
    except DatasetError as exc:
        return [f"mask of {item.path}: {exc}"]
    if mask.shape != tuple(shape):
        return [f"{item.mask_path}: mask is {mask.shape[0]}x{mask.shape[1]} but its image {item.path} is {shape[0]}x{shape[1]}; "
                "expected a mask of the same size"]
    return []
