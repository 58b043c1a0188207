"""How a camera frame of another size becomes the model's input, and where it then sits in it.

One rule for training and serving. `train` fits every image whose size differs from the camera
size the way `fit_to_frame` does (aspect kept: shrunk by area averaging only when it does not
fit, never enlarged, centred, the border mirrored), and the worker's default size policy, `fit`,
does the same to a live frame of another size, so the model judges what it learnt from. The
older policy `resize` stretches the frame to the input size (aspect not kept); `reject` sends it
to the dead-letter topic.

A `Placement` says where the frame's own pixels lie in the model input, so a defect map (which
covers the whole input) is read back in the frame's pixels and a region found in the mirrored
border is not reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

SIZE_POLICIES = ("fit", "resize", "reject")


@dataclass(frozen=True)
class Placement:
    """The frame's pixels inside the model input: rows top..top+height, columns left..left+width.

    The frame (frame_height x frame_width) was scaled to height x width there; with `resize` that
    is the whole input, with `fit` a centred part of it (the rest is mirrored border).
    """

    frame_height: int
    frame_width: int
    input_height: int
    input_width: int
    top: int
    left: int
    height: int
    width: int

    @classmethod
    def whole(cls, frame_height: int, frame_width: int, input_height: int | None = None,
              input_width: int | None = None) -> "Placement":
        """The frame fills the input (same size, or stretched to it)."""
        ih, iw = input_height or frame_height, input_width or frame_width
        return cls(frame_height, frame_width, ih, iw, 0, 0, ih, iw)

    def to_frame(self, x: float, y: float) -> tuple[float, float]:
        """Input pixel coordinates (x, y) as frame pixel coordinates, clipped to the frame."""
        fx = (x - self.left) * self.frame_width / self.width
        fy = (y - self.top) * self.frame_height / self.height
        return min(max(fx, 0.0), float(self.frame_width)), min(max(fy, 0.0), float(self.frame_height))

    def cell_coverage(self, rows: int, cols: int) -> np.ndarray:
        """[rows, cols]: the part (0..1) of each cell of a map over the input that lies on the frame's pixels."""
        def overlap(n: int, size: int, start: int, length: int) -> np.ndarray:
            edges = np.arange(n + 1) * (size / n)
            lo, hi = np.maximum(edges[:-1], start), np.minimum(edges[1:], start + length)
            return np.clip(hi - lo, 0.0, None) / (size / n)
        return np.outer(overlap(rows, self.input_height, self.top, self.height),
                        overlap(cols, self.input_width, self.left, self.width))

    def crop_content(self, plane: np.ndarray) -> np.ndarray:
        """The part of an input-sized array that holds the frame's pixels."""
        return plane[self.top:self.top + self.height, self.left:self.left + self.width]


def fitted_size(frame: tuple[int, int], target: tuple[int, int]) -> tuple[int, int]:
    """(height, width) a frame keeps inside `target` under `fit`: shrunk to fit, never enlarged."""
    h, w = frame
    th, tw = target
    scale = min(1.0, th / h, tw / w)
    if scale >= 1.0:
        return h, w
    return max(1, min(th, round(h * scale))), max(1, min(tw, round(w * scale)))


def place(frame: tuple[int, int], target: tuple[int, int], policy: str = "fit") -> Placement:
    """Where a frame of size `frame` lies in a model input of size `target` under `policy`."""
    if policy not in SIZE_POLICIES:
        raise ValueError(f"size policy must be one of {', '.join(SIZE_POLICIES)}, got {policy!r}")
    if policy != "fit" or tuple(frame) == tuple(target):
        return Placement.whole(frame[0], frame[1], target[0], target[1])
    h, w = fitted_size(frame, target)
    return Placement(frame[0], frame[1], target[0], target[1], (target[0] - h) // 2, (target[1] - w) // 2, h, w)


def fit_to_frame(image: np.ndarray, frame: tuple[int, int], pad: str = "symmetric") -> np.ndarray:
    """An image of another size fitted into `frame`: shrunk only if too big, then padded (mirrored, or `pad` for np.pad)."""
    if tuple(image.shape) == tuple(frame):
        return image
    where = place(image.shape, frame, "fit")
    if (where.height, where.width) != image.shape:
        image = cv2.resize(image, (where.width, where.height), interpolation=cv2.INTER_AREA)
    bottom, right = frame[0] - where.height - where.top, frame[1] - where.width - where.left
    return np.pad(image, ((where.top, bottom), (where.left, right)), mode=pad)


def stretch_to_frame(image: np.ndarray, frame: tuple[int, int]) -> np.ndarray:
    """The policy `resize`: the image resized to `frame`, aspect not kept (area when shrinking, linear when enlarging)."""
    height, width = image.shape
    if (height, width) == tuple(frame):
        return image
    shrink = width * height > frame[0] * frame[1]
    return cv2.resize(image, (frame[1], frame[0]), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
