"""Synthetic DAGM-like frames: statistical grayscale textures with labelled defects.

Feeds the tests, the demo model and the line simulator, so it imports only numpy and OpenCV
(no TensorFlow) and makes hundreds of 512x512 frames per second. Every frame is a pure
function of (seed, index): a simulator and a test that ask for the same frame get the same
pixels, without sharing any state.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

TEXTURES = ("streaks", "grain", "weave", "speckle")
DEFECTS = ("scratch", "spot", "blob", "smudge")
# Scratches dominate, as on DAGM class 8; they are also the hardest kind to see.
_DEFECT_WEIGHTS = np.array([0.4, 0.2, 0.2, 0.2])


@dataclass(frozen=True)
class Sample:
    """One synthetic frame with its ground truth."""

    image: np.ndarray  # uint8 HxW
    label: int  # 1 = defect, 0 = ok
    mask: np.ndarray  # uint8 HxW, 255 on the defect
    kind: str  # defect kind ("scratch", ...) or "ok"
    texture: str  # background texture kind


class SyntheticFrames:
    """Deterministic generator of DAGM-like frames; `sample(i)` depends only on (seed, i)."""

    def __init__(self, seed: int = 0, size: tuple[int, int] = (512, 512), defect_rate: float = 0.5, defect_scale: float = 1.0):
        # defect_scale > 1 widens scratches and enlarges spots and blobs (smudges are already
        # large) so defects stay visible to a model that downscales frames by about that factor;
        # 1.0 (default) is the DAGM-like hard setting. Same rng draws either way: only sizes change.
        if not 1.0 <= defect_scale <= 8.0:
            raise ValueError(f"defect_scale must be in [1, 8], got {defect_scale}")
        if not 0.0 <= defect_rate <= 1.0:
            raise ValueError(f"defect_rate must be in [0, 1], got {defect_rate}")
        if min(size) < 32:
            raise ValueError(f"size must be at least 32x32 pixels, got {size}")
        self.seed = int(seed)
        self.size = (int(size[0]), int(size[1]))  # (height, width)
        self.defect_rate = float(defect_rate)
        self.defect_scale = float(defect_scale)

    def sample(self, index: int) -> Sample:
        """Return frame `index`; the same (seed, index) always gives the same frame."""
        rng = np.random.default_rng([self.seed, int(index)])
        texture = TEXTURES[int(rng.integers(len(TEXTURES)))]
        background = _texture(rng, texture, self.size)
        is_defect = rng.random() < self.defect_rate
        mask = np.zeros(self.size, np.uint8)
        kind = "ok"
        if is_defect:
            kind = DEFECTS[int(rng.choice(len(DEFECTS), p=_DEFECT_WEIGHTS))]
            alpha = _defect_alpha(rng, kind, self.size, self.defect_scale)
            # Contrast relative to the texture's spread; like DAGM scratches (dark, thin, 40-100 grey
            # levels deep), visible at native resolution yet easily lost by downscaling.
            contrast = rng.uniform(2.5, 5.0) * max(background.std(), 12.0)
            sign = 1.0 if rng.random() < 0.3 else -1.0  # mostly dark, as on DAGM
            background += sign * contrast * alpha
            mask = cv2.dilate((alpha > 0.25).astype(np.uint8) * 255, np.ones((5, 5), np.uint8))
        image = np.clip(background, 0, 255).astype(np.uint8)
        return Sample(image=image, label=int(is_defect), mask=mask, kind=kind, texture=texture)

    def batch(self, start: int, count: int) -> list[Sample]:
        """Return samples start .. start+count-1."""
        return [self.sample(i) for i in range(start, start + count)]


def _noise(rng: np.random.Generator, shape: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """Smooth noise: a small random field upsampled to `size` (fast, no large convolutions)."""
    small = rng.standard_normal(shape, dtype=np.float32)
    return cv2.resize(small, (size[1], size[0]), interpolation=cv2.INTER_CUBIC)


def _texture(rng: np.random.Generator, kind: str, size: tuple[int, int]) -> np.ndarray:
    """A float32 background texture with mean ~110 and a kind-specific structure."""
    h, w = size
    fine = rng.standard_normal(size, dtype=np.float32)
    if kind == "streaks":  # anisotropic stripes, like DAGM class 8
        vertical = rng.random() < 0.5
        coarse = (4, max(8, w // 12)) if vertical else (max(8, h // 12), 4)
        medium = (max(4, h // 16), max(8, w // 6)) if vertical else (max(8, h // 6), max(4, w // 16))
        tex = 30 * _noise(rng, coarse, size) + 12 * _noise(rng, medium, size) + 8 * fine
    elif kind == "grain":  # isotropic blotchy grain
        tex = 18 * _noise(rng, (max(4, h // 32), max(4, w // 32)), size)
        tex += 10 * _noise(rng, (max(8, h // 8), max(8, w // 8)), size) + 6 * fine
    elif kind == "weave":  # periodic fabric with jitter
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        period = rng.uniform(6, 14)
        angle = rng.uniform(0, np.pi)
        u = xx * np.cos(angle) + yy * np.sin(angle)
        v = -xx * np.sin(angle) + yy * np.cos(angle)
        tex = 14 * np.sin(2 * np.pi * u / period) * np.sin(2 * np.pi * v / period)
        tex += 10 * _noise(rng, (max(4, h // 32), max(4, w // 32)), size) + 6 * fine
    else:  # speckle: fine noise with sparse bright grains
        tex = 12 * fine + 8 * _noise(rng, (max(4, h // 16), max(4, w // 16)), size)
        grains = rng.random(size, dtype=np.float32) > 0.995
        tex += 25 * grains
    return tex.astype(np.float32) + rng.uniform(90, 140)


def _defect_alpha(rng: np.random.Generator, kind: str, size: tuple[int, int], grow: float = 1.0) -> np.ndarray:
    """A float32 map in [0, 1]: how strongly each pixel shows the defect (`grow` = defect_scale)."""
    h, w = size
    scale = min(h, w) / 512.0
    canvas = np.zeros(size, np.uint8)
    margin = int(0.1 * min(h, w))
    cx, cy = int(rng.integers(margin, w - margin)), int(rng.integers(margin, h - margin))
    if kind == "scratch":  # thin, slightly curved, a few pixels wide
        length = rng.uniform(25, 90) * max(scale, 0.35) * (1 + (grow - 1) / 2)
        angle = rng.uniform(0, np.pi)
        bend = rng.uniform(-0.4, 0.4)
        t = np.linspace(-0.5, 0.5, 12)
        pts = np.stack([cx + length * t * np.cos(angle + bend * t), cy + length * t * np.sin(angle + bend * t)], 1)
        thickness = int(round(int(rng.integers(1, 3)) * grow))
        cv2.polylines(canvas, [np.round(pts).astype(np.int32)], False, 255, thickness, cv2.LINE_AA)
    elif kind == "spot":
        radius = max(2, int(rng.uniform(4, 10) * max(scale, 0.5) * grow))
        cv2.circle(canvas, (cx, cy), radius, 255, -1, cv2.LINE_AA)
    elif kind == "blob":
        axes = (max(3, int(rng.uniform(8, 30) * scale * grow)), max(3, int(rng.uniform(5, 20) * scale * grow)))
        cv2.ellipse(canvas, (cx, cy), axes, float(rng.uniform(0, 180)), 0, 360, 255, -1, cv2.LINE_AA)
        canvas = cv2.GaussianBlur(canvas, (0, 0), 1.5)
    else:  # smudge: large, soft, low contrast
        axes = (max(6, int(rng.uniform(25, 60) * scale)), max(4, int(rng.uniform(12, 35) * scale)))
        cv2.ellipse(canvas, (cx, cy), axes, float(rng.uniform(0, 180)), 0, 360, 255, -1)
        canvas = cv2.GaussianBlur(canvas, (0, 0), max(2.0, 6 * scale))
        return canvas.astype(np.float32) / 255.0
    return canvas.astype(np.float32) / 255.0
