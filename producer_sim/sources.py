"""Where frames come from: synthetic textures or a folder of images, encoded once into a pool.

The pool is built before the first frame is published, so the publish loop only hands bytes
to the Kafka client and encoding can never limit the rate. A defective frame whose true mask is
known (every synthetic defect; a data set's masks) carries the mask's bounding box in frame
pixels, sent as the `truth_box` header so `watch` can score the worker's regions live.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from line_contracts.frame import Encoding, TruthLabel
from producer_sim.settings import SimSettings

SYNTHETIC_DEFECT_RATE = 0.1
SYNTHETIC_SIZE = (512, 512)  # (height, width)


class SourceError(ValueError):
    """The image source cannot give frames; the message names the path or setting and the fix."""


@dataclass(frozen=True)
class PooledFrame:
    """One encoded frame ready to publish."""

    value: bytes
    width: int
    height: int
    truth: Optional[TruthLabel]
    origin: str  # synthetic index or file path, for logs and tests
    truth_box: Optional[str] = None  # 'x,y,width,height' of the true defect mask, frame pixels (FrameHeaders.truth_box)


@dataclass(frozen=True)
class FramePool:
    """The frames a run cycles through, plus one good PNG for building bad frames."""

    frames: list[PooledFrame]
    encoding: Encoding
    good_png: bytes
    description: str

    def __getitem__(self, k: int) -> PooledFrame:
        return self.frames[k % len(self.frames)]


def encode(image: np.ndarray, encoding: Encoding, jpeg_quality: int = 90, png_compression: int = 3) -> bytes:
    """Encode a uint8 HxW image as png, jpeg or raw mono8 bytes."""
    if encoding is Encoding.RAW:
        return np.ascontiguousarray(image, dtype=np.uint8).tobytes()
    if encoding is Encoding.PNG:
        ok, buf = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, png_compression])
    else:
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
    if not ok:
        raise SourceError(f"OpenCV could not encode a {image.shape} image as {encoding.value}")
    return buf.tobytes()


def _truth(label: Optional[int]) -> Optional[TruthLabel]:
    if label is None:
        return None
    return TruthLabel.DEFECT if label else TruthLabel.OK


def _fit(image: np.ndarray, size: Optional[tuple[int, int]]) -> np.ndarray:
    if size is None or image.shape[:2] == size:
        return image
    return cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)


def box_of(mask: Optional[np.ndarray]) -> Optional[str]:
    """'x,y,width,height' of the mask's non-zero pixels (the truth_box header), or None for no/empty mask."""
    if mask is None:
        return None
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return f"{xs.min()},{ys.min()},{xs.max() - xs.min() + 1},{ys.max() - ys.min() + 1}"


def _size(settings: SimSettings) -> Optional[tuple[int, int]]:
    if settings.frame_width is None:
        return None
    return settings.frame_height, settings.frame_width


# (image, label or None, origin, true mask or None) per pooled frame
Pooled = tuple[np.ndarray, Optional[int], str, Optional[np.ndarray]]


def _synthetic_images(settings: SimSettings) -> tuple[list[Pooled], str]:
    from surface_images.synthetic import SyntheticFrames

    rate = SYNTHETIC_DEFECT_RATE if settings.defect_rate is None else settings.defect_rate
    size = _size(settings) or SYNTHETIC_SIZE
    gen = SyntheticFrames(seed=settings.seed, size=size, defect_rate=rate,
                          defect_scale=settings.defect_scale)
    samples = (gen.sample(i) for i in range(settings.pool_size))
    images = [(s.image, s.label, f"synthetic#{i}", s.mask if s.label else None) for i, s in enumerate(samples)]
    return images, f"synthetic {size[1]}x{size[0]} defect_rate={rate} seed={settings.seed}"


def _pick(items: list, settings: SimSettings) -> list:
    """Choose pool_size items, seeded; match defect_rate when it is set and labels are known."""
    rng = np.random.default_rng(settings.seed)
    n = min(settings.pool_size, len(items)) if settings.defect_rate is None else settings.pool_size
    if settings.defect_rate is None:
        order = rng.permutation(len(items))[:n]
        return [items[i] for i in order]
    defects = [it for it in items if it.label == 1]
    oks = [it for it in items if it.label == 0]
    want_defects = int(round(n * settings.defect_rate))
    if (want_defects and not defects) or (n - want_defects and not oks):
        raise SourceError(f"SIM_DEFECT_RATE={settings.defect_rate} needs both defect and ok images with labels, but "
                          f"{settings.source_dir} has {len(defects)} defect and {len(oks)} ok labelled images; "
                          "unset the defect rate to use the folder's own mix")

    def cycle(group: list, k: int) -> list:
        order = rng.permutation(len(group)) if group else []
        return [group[order[i % len(group)]] for i in range(k)]

    chosen = cycle(defects, want_defects) + cycle(oks, n - want_defects)
    return [chosen[i] for i in rng.permutation(len(chosen))]


def _folder_images(settings: SimSettings) -> tuple[list[Pooled], str]:
    from surface_images.datasets import DatasetError, discover

    root = Path(settings.source_dir)
    if not root.is_dir():
        raise SourceError(f"SIM_SOURCE_DIR / --source-dir {root} is not a folder")
    try:
        items = discover(root, split=settings.source_split)
    except DatasetError as exc:
        raise SourceError(f"image source {root}: {exc}") from None
    if not items:
        raise SourceError(f"image source {root} holds no images (expected PNG/JPEG/BMP files, a DAGM layout, "
                          "or defect/ and ok/ sub-folders)")
    chosen = _pick(items, settings)
    images = []
    for it in chosen:
        try:
            image = it.read()
            has_mask = it.label == 1 and (it.mask_path is not None or it.ellipse is not None)
            images.append((image, it.label, str(it.path), it.read_mask(image.shape) if has_mask else None))
        except DatasetError as exc:
            raise SourceError(f"image source {root}: {exc}") from None
    labelled = sum(1 for _, label, _, _ in images if label is not None)
    return images, f"folder {root} ({len(items)} images, {labelled} of {len(images)} pooled carry a label)"


def build_pool(settings: SimSettings) -> FramePool:
    """Read or generate the images, resize and encode them once."""
    if settings.source_dir is None:
        images, description = _synthetic_images(settings)
    else:
        images, description = _folder_images(settings)
    size = _size(settings)
    frames = []
    good_png = b""
    for image, label, origin, mask in images:
        image = _fit(image, size)
        truth_box = box_of(None if mask is None else _fit(mask, size))  # resized with the frame
        if image.ndim != 2 or image.dtype != np.uint8:
            raise SourceError(f"{origin}: expected an 8-bit grayscale image, got shape {image.shape} {image.dtype}")
        value = encode(image, settings.encoding, settings.jpeg_quality, settings.png_compression)
        if not good_png:
            good_png = value if settings.encoding is Encoding.PNG else encode(image, Encoding.PNG)
        frames.append(PooledFrame(value, image.shape[1], image.shape[0], _truth(label), origin, truth_box))
    return FramePool(frames, settings.encoding, good_png, description)
