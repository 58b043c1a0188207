"""In-memory training data: decoded once, split by label, augmented per batch.

A few hundred 512x512 grayscale frames fit in memory (500 frames = 131 MB; four times that when
they were resized to the working size and kept as float32, training/frames.py: prepare), so images are
decoded once and batches are cut and augmented with numpy: cheaper on 2 shared CPU cores than
re-decoding PNGs every epoch, and identical across runs for a given seed.
"""

from __future__ import annotations

import contextlib
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

import cv2
import numpy as np

from surface_images.datasets import LabeledImage
from surface_images.synthetic import SyntheticFrames
from training.frames import fit_to_frame, prepare
from training.model import MIN_SPREAD, standardise
from training.synthetic import paste_stain


@dataclass
class ArraySet:
    """Images, weak masks and labels of one split, at the model's working resolution."""

    images: np.ndarray  # [N, H, W], or [N, H, W, 3] for the extremes downscale: uint8, float32 if resized (frames.prepare)
    masks: np.ndarray  # uint8 [N, H, W], 255 on defect
    labels: np.ndarray  # int64 [N]
    names: list[str]
    has_mask: Optional[np.ndarray] = None  # bool [N]: the mask is known (ok frames: all clear); None = all known

    def __post_init__(self) -> None:
        if self.has_mask is None:
            self.has_mask = np.ones(len(self.labels), bool)

    def subset(self, index: Sequence[int]) -> "ArraySet":
        """The frames at `index`."""
        index = np.asarray(index, np.int64)
        return ArraySet(self.images[index], self.masks[index], self.labels[index], [self.names[i] for i in index], self.has_mask[index])

    def __len__(self) -> int:
        return len(self.labels)


def _fit(image: np.ndarray, size: tuple[int, int], nearest: bool = False) -> np.ndarray:
    """Resize to (height, width); area averaging for pixels, as the exported model does."""
    if image.shape == tuple(size):
        return image
    return cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_AREA)


# Frames are fitted and brought to the working size this many at a time: a stack of every camera
# frame at once doubled the peak memory (1300 frames of 5 MP are 6.5 GB per copy).
PREPARE_CHUNK = 64


def load_images(items: Sequence[LabeledImage], size: tuple[int, int], frame: Optional[tuple[int, int]] = None,
                decoded: Optional[Sequence[np.ndarray]] = None, downscale: str = "area") -> ArraySet:
    """Decode labelled images and their masks, fitted into `frame` (camera size), then brought to `size`.

    The working-size step is `training.frames.prepare`, the same resize the exported model runs.
    `decoded` passes images already read (the data check reads each file once).
    """
    if frame is None and downscale != "area":
        raise ValueError(f"downscale {downscale!r} needs the camera frame size (frame=...)")
    unlabelled = [str(it.path) for it in items if it.label is None]
    if unlabelled:
        raise ValueError(f"training needs labelled images; {len(unlabelled)} have no label, e.g. {unlabelled[0]}")
    images, masks, pending = [], [], []
    for i, it in enumerate(items):
        image = decoded[i] if decoded is not None else it.read()
        mask = it.read_mask(image.shape)
        if frame is not None:
            image, mask = fit_to_frame(image, frame), fit_to_frame(mask, frame)
            pending.append(image)
            if len(pending) == PREPARE_CHUNK:
                images.append(prepare(np.stack(pending), size, downscale=downscale))
                pending = []
        else:
            images.append(_fit(image, size)[np.newaxis])
        masks.append(_fit(mask, size, nearest=True))
    if pending:
        images.append(prepare(np.stack(pending), size, downscale=downscale))
    stacked = np.concatenate(images)
    known = np.array([it.label == 0 or it.mask_path is not None or it.ellipse is not None for it in items], bool)
    return ArraySet(stacked, np.stack(masks), np.array([it.label for it in items], np.int64), [str(it.path) for it in items], known)


# Frames per task when synthetic frames are made in several processes (load_synthetic `workers`).
SYNTHETIC_CHUNK = 200


def load_synthetic(frames: SyntheticFrames, start: int, count: int, size: tuple[int, int], downscale: str = "area",
                   workers: int = 1) -> ArraySet:
    """Generate synthetic frames start..start+count-1, brought to `size` by the model's own resize.

    `workers` > 1 makes the frames in that many processes (numpy noise runs on one core each); every
    frame is a pure function of (seed, index), so the frames are the same either way.
    """
    bounds = list(range(start, start + count, SYNTHETIC_CHUNK)) + [start + count]
    spans = [(lo, hi - lo) for lo, hi in zip(bounds[:-1], bounds[1:])]
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]] = []
    with contextlib.ExitStack() as stack:
        if workers > 1 and len(spans) > 1:
            # spawn, not fork: the caller has TensorFlow's threads running, which a forked child must not inherit
            pool = stack.enter_context(ProcessPoolExecutor(min(workers, len(spans)), mp_context=multiprocessing.get_context("spawn")))
            made = pool.map(_synthetic_part, [frames] * len(spans), *zip(*spans), [size] * len(spans))
        else:
            made = (_synthetic_part(frames, lo, n, size) for lo, n in spans)
        for images, masks, labels, kinds in made:  # brought to the working size part by part: no full stack of camera frames
            parts.append((prepare(images, size, downscale=downscale), masks, labels, kinds))
    return ArraySet(
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        np.concatenate([p[2] for p in parts]),
        [f"synthetic:{frames.seed}:{start + i}:{kind}" for i, kind in enumerate(k for p in parts for k in p[3])],
    )


def _synthetic_part(frames: SyntheticFrames, start: int, count: int, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(camera frames, masks at `size`, labels, defect kinds) of frames start..start+count-1."""
    samples = frames.batch(start, count)
    return (np.stack([s.image for s in samples]), np.stack([_fit(s.mask, size, nearest=True) for s in samples]),
            np.array([s.label for s in samples], np.int64), [s.kind for s in samples])


def stratified_split(labels: np.ndarray, fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    """Index arrays, one per fraction, each with the same defect share (shuffled by seed)."""
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in fractions]
    for label in np.unique(labels):
        index = rng.permutation(np.flatnonzero(labels == label))
        bounds = np.round(np.cumsum(fractions) / np.sum(fractions) * len(index)).astype(int)
        for i, (lo, hi) in enumerate(zip(np.r_[0, bounds[:-1]], bounds)):
            parts[i].extend(index[lo:hi].tolist())
    return [np.sort(np.array(p, np.int64)) for p in parts]


class BatchSampler:
    """Augmented training batches: (pixels [B,h,w,C] float 0..255, labels [B], seg targets, mask known [B]).

    `balanced` (the whole-frame recipe): each epoch holds every defective frame and as many
    randomly drawn ok frames, so both classes weigh the same and an epoch costs 2x the defects.
    """

    def __init__(self, data: ArraySet, batch_size: int, stride: int, crop: Optional[int], seed: int, augment: bool = True, repeats: int = 1,
                 balanced: bool = False, invert: float = 0.0, synthetic_stains: float = 0.0, scale_jitter: float = 0.0,
                 standardize: bool = False):
        self.data, self.batch_size, self.stride, self.crop, self.augment = data, batch_size, stride, crop, augment
        # Standardise each example as the model does at serving time: by its whole frame's mean and
        # spread, also where the example is a crop (the model's own layer, which would use the crop's,
        # passes training batches through: build_models `standardised_in_training`).
        self.standardize = standardize
        # each frame's (mean, spread), once: its crops ask for them every epoch
        self.frame_stats = np.array([(float(f.mean()), float(f.std())) for f in data.images]) if standardize and crop else None
        if not 0.0 <= scale_jitter < 1.0:
            raise ValueError(f"scale jitter must be in [0, 1), got {scale_jitter:g}")
        self.scale_jitter = scale_jitter  # frames zoomed by up to 1 +- this, with a random shift (rescale_and_shift)
        self.invert = invert  # probability of a negative (255 - x): a bright defect taught by a dark one
        # per epoch, this many ok frames per real defect get a soft patch and count as defects with a mask (training/synthetic.py)
        self.synthetic_stains = synthetic_stains
        if synthetic_stains and (crop or not balanced):
            raise ValueError("synthetic stains need the whole-frame recipe (balanced epochs, no crops)")
        self.repeats = max(1, repeats)  # passes over the data per epoch (crops are cheap)
        self.balanced = balanced
        self.rng = np.random.default_rng(seed)

    def _order(self) -> tuple[np.ndarray, np.ndarray]:
        """(frame indices, which of them get a synthetic stain) of one pass, in random order."""
        if not self.balanced:
            order = self.rng.permutation(len(self.data))
            return order, np.zeros(len(order), bool)
        defect, ok = np.flatnonzero(self.data.labels == 1), np.flatnonzero(self.data.labels == 0)
        picked = self.rng.choice(ok, size=min(len(ok), max(len(defect), 1)), replace=False)
        # stains go on ok frames not already in this pass, so the pass keeps as many clean ok frames as real defects
        spare = np.setdiff1d(ok, picked)
        stained = self.rng.choice(spare, size=min(len(spare), self._stained_count(len(defect))), replace=False)
        order = np.concatenate([defect, picked, stained])
        flags = np.r_[np.zeros(len(defect) + len(picked), bool), np.ones(len(stained), bool)]
        shuffle = self.rng.permutation(len(order))
        return order[shuffle], flags[shuffle]

    def _stained_count(self, n_def: int) -> int:
        return int(round(self.synthetic_stains * n_def))  # balanced epochs only: the constructor checks

    def steps(self) -> int:
        """Batches per epoch."""
        n_def = int(self.data.labels.sum())
        n_ok = len(self.data) - n_def
        picked = min(n_ok, max(n_def, 1))
        per_pass = n_def + picked + min(n_ok - picked, self._stained_count(n_def)) if self.balanced else len(self.data)
        return int(np.ceil(self.repeats * per_pass / self.batch_size))

    def epoch(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """One pass over the data in a fresh random order."""
        passes = [self._order() for _ in range(self.repeats)]
        order, stained = np.concatenate([o for o, _ in passes]), np.concatenate([f for _, f in passes])
        for start in range(0, len(order), self.batch_size):
            picks, paste = order[start : start + self.batch_size], stained[start : start + self.batch_size]
            pairs = [self._example(i, p) for i, p in zip(picks, paste)]
            pixels = np.stack([p for p, _ in pairs])
            pixels = pixels[..., np.newaxis] if pixels.ndim == 3 else pixels
            masks = np.stack([m for _, m in pairs])
            labels = np.where(paste, 1.0, self.data.labels[picks]).astype(np.float32)
            yield (pixels, labels, seg_targets(masks, self.stride),
                   np.where(paste, 1.0, self.data.has_mask[picks]).astype(np.float32))

    def _example(self, i: int, stain: bool = False) -> tuple[np.ndarray, np.ndarray]:
        image, mask = self.data.images[i], self.data.masks[i]
        if self.crop:
            image, mask = self._crop(image, mask)
        image = image.astype(np.float32)
        gain, offset = 1.0, 0.0  # the brightness changes below (x -> gain * x + offset), which the frame's statistics follow
        if stain:
            image, mask = paste_stain(image, self.rng)
        if self.augment:
            rng = self.rng
            if self.scale_jitter:
                image, mask = rescale_and_shift(image, mask, self.scale_jitter, rng)
            if image.shape[0] == image.shape[1]:
                k = int(rng.integers(4))
                image, mask = np.rot90(image, k), np.rot90(mask, k)
            if rng.random() < 0.5:
                image, mask = image[:, ::-1], mask[:, ::-1]
            if rng.random() < 0.5:
                image, mask = image[::-1], mask[::-1]
            if self.invert and rng.random() < self.invert:
                # the extremes downscale's minimum and maximum channels trade places in a negative
                image = 255.0 - (image[..., [0, 2, 1]] if image.ndim == 3 else image)
                gain, offset = -gain, 255.0 - offset
            mean, contrast, shift = image.mean(), rng.uniform(0.8, 1.25), rng.uniform(-20, 20)
            image = np.clip((image - mean) * contrast + mean + shift, 0, 255)
            gain, offset = gain * contrast, (offset - mean) * contrast + mean + shift
        if self.standardize:
            if self.frame_stats is not None:  # a crop: its whole frame's statistics, carried through the brightness changes
                frame_mean, frame_spread = self.frame_stats[i]
                image = standardise(image, gain * frame_mean + offset, max(abs(gain) * frame_spread, MIN_SPREAD))
            else:  # the frame itself, as augmented (exactly what the model's layer computes)
                image = standardise(image, image.mean(), max(float(image.std()), MIN_SPREAD))
        return np.ascontiguousarray(image, dtype=np.float32), np.ascontiguousarray(mask)

    def _crop(self, image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A crop x crop window; for a defect, one that holds the centre of its mask."""
        h, w = image.shape[:2]
        c = min(self.crop, h, w)
        ys, xs = np.nonzero(mask)
        if len(ys):
            cy, cx = int(ys.mean()), int(xs.mean())
            margin = c // 4
            top, left = self._window(cy, c, margin, h), self._window(cx, c, margin, w)
        else:
            top, left = int(self.rng.integers(h - c + 1)), int(self.rng.integers(w - c + 1))
        return image[top : top + c, left : left + c], mask[top : top + c, left : left + c]


    def _window(self, centre: int, crop: int, margin: int, extent: int) -> int:
        """A window start in [0, extent-crop] keeping `centre` at least `margin` inside if it can."""
        lo = min(max(centre - crop + margin, 0), extent - crop)
        hi = max(min(max(centre - margin, 0), extent - crop), lo)
        return int(self.rng.integers(lo, hi + 1))


def rescale_and_shift(image: np.ndarray, mask: np.ndarray, jitter: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The frame zoomed by a factor in [1/(1+jitter), 1+jitter] (log-uniform) about a random point, same size out.

    Flips only mirror a defect; a zoom shows the network each defect at other sizes and the
    surface's texture at other grains, which a few hundred frames of one camera do not. The
    border is mirrored, as the frames' own padding is (training/frames.py: fit_to_frame), and the
    mask follows the pixels (nearest neighbour, so a known mask stays binary).
    """
    h, w = image.shape[:2]
    scale = float(np.exp(rng.uniform(-np.log1p(jitter), np.log1p(jitter))))
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)  # this point stays where it is
    matrix = np.array([[scale, 0.0, (1.0 - scale) * cx], [0.0, scale, (1.0 - scale) * cy]], np.float32)
    image = cv2.warpAffine(np.ascontiguousarray(image), matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    mask = cv2.warpAffine(np.ascontiguousarray(mask), matrix, (w, h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT_101)
    return image, mask


def seg_targets(masks: np.ndarray, stride: int) -> np.ndarray:
    """Masks [B,h,w] -> [B,h/s,w/s,1] float: 1 where any mask pixel falls in the cell."""
    b, h, w = masks.shape
    hs, ws = -(-h // stride), -(-w // stride)
    padded = np.zeros((b, hs * stride, ws * stride), np.uint8)
    padded[:, :h, :w] = masks > 0
    return padded.reshape(b, hs, stride, ws, stride).max(axis=(2, 4)).astype(np.float32)[..., np.newaxis]
