"""Image-level evidence sets: a `defect/` + `ok/` folder tree of a made-up surface product.

Training must work on data it was never tuned on, so these sets differ from the DAGM-like
frames of `surface_images.synthetic` on purpose: other backgrounds (machined, cast, coated
surfaces with uneven lighting), four defect kinds (blobs, cracks, scratches, stains), any
frame size and aspect, JPEG or PNG, and image-level labels only. `--masks` also writes each
defect's pixel truth to `masks/` (PNG, 255 = defect), for measuring where a model points
(`python -m training evaluate`); train on a tree without that folder to keep the labels image-level.

    python -m surface_images.make_set --kind scratches --size 240x400 --out DIR
    python -m surface_images.make_set --kind mixed --size 100x200-400x600 --out DIR   # every image its own size

Every image is a pure function of (seed, index): the same command rebuilds the same set.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np

KINDS = ("blobs", "cracks", "scratches", "stains")
SURFACES = ("machined", "cast", "coated")


def surface(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """A float32 defect-free surface: a texture under a smooth lighting gradient."""
    h, w = size
    kind = SURFACES[int(rng.integers(len(SURFACES)))]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    fine = rng.standard_normal(size, dtype=np.float32)
    if kind == "machined":  # fine parallel tool marks
        angle = rng.uniform(0, np.pi)
        u = xx * np.cos(angle) + yy * np.sin(angle)
        tex = 6 * np.sin(2 * np.pi * u / rng.uniform(3, 7)) + 4 * fine
    elif kind == "cast":  # coarse porous grain
        small = rng.standard_normal((max(2, h // 6), max(2, w // 6))).astype(np.float32)
        tex = 9 * cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR) + 5 * fine
    else:  # coated: smooth with mild mottling
        small = rng.standard_normal((max(2, h // 40), max(2, w // 40))).astype(np.float32)
        tex = 7 * cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC) + 3 * fine
    light = rng.uniform(-25, 25) * (xx / max(w - 1, 1) - 0.5) + rng.uniform(-25, 25) * (yy / max(h - 1, 1) - 0.5)
    return tex + light + rng.uniform(90, 160)


def defect_alpha(rng: np.random.Generator, kind: str, size: tuple[int, int]) -> np.ndarray:
    """A float32 map in [0, 1]: where and how strongly a defect of `kind` shows."""
    h, w = size
    short = min(h, w)
    canvas = np.zeros(size, np.float32)
    cx, cy = rng.uniform(0.12, 0.88) * w, rng.uniform(0.12, 0.88) * h
    if kind == "blobs":  # one or a few compact spots (pores, inclusions)
        for _ in range(int(rng.integers(1, 4))):
            axes = (max(2, int(rng.uniform(0.015, 0.05) * short)), max(2, int(rng.uniform(0.015, 0.05) * short)))
            centre = (int(cx + rng.normal(0, 0.04 * short)), int(cy + rng.normal(0, 0.04 * short)))
            cv2.ellipse(canvas, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1, cv2.LINE_AA)
        return cv2.GaussianBlur(canvas, (0, 0), 1.0)
    if kind == "cracks":  # a jagged random walk, 1-2 px wide
        points = [(cx, cy)]
        heading = rng.uniform(0, 2 * np.pi)
        for _ in range(int(rng.integers(8, 20))):
            heading += rng.normal(0, 0.6)
            step = rng.uniform(0.015, 0.04) * short
            x, y = points[-1]
            points.append((x + step * np.cos(heading), y + step * np.sin(heading)))
        cv2.polylines(canvas, [np.round(points).astype(np.int32)], False, 1.0, int(rng.integers(1, 3)), cv2.LINE_AA)
        return canvas
    if kind == "scratches":  # a long, straight-ish, thin line
        length = rng.uniform(0.25, 0.6) * short
        angle = rng.uniform(0, np.pi)
        t = np.linspace(-0.5, 0.5, 10)
        bend = rng.uniform(-0.2, 0.2)
        pts = np.stack([cx + length * t * np.cos(angle + bend * t), cy + length * t * np.sin(angle + bend * t)], 1)
        cv2.polylines(canvas, [np.round(pts).astype(np.int32)], False, 1.0, int(rng.integers(1, 3)), cv2.LINE_AA)
        return canvas
    if kind == "stains":  # large, soft, low-contrast patch
        axes = (max(4, int(rng.uniform(0.06, 0.18) * short)), max(4, int(rng.uniform(0.04, 0.12) * short)))
        cv2.ellipse(canvas, (int(cx), int(cy)), axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
        return cv2.GaussianBlur(canvas, (0, 0), max(2.0, 0.03 * short))
    raise ValueError(f"defect kind must be one of {KINDS}, got {kind!r}")


def image_size(seed: int, index: int, defective: bool, size: tuple[int, int],
               largest: Optional[tuple[int, int]] = None) -> tuple[int, int]:
    """The size of one image: `size`, or with `largest` a height and width drawn uniformly between the two.

    Drawn from a generator of its own, so a fixed-size set is the same bit for bit as before ranges existed.
    """
    if largest is None:
        return size
    rng = np.random.default_rng([seed, index, int(defective), 1])
    return int(rng.integers(size[0], largest[0] + 1)), int(rng.integers(size[1], largest[1] + 1))


def make_image(seed: int, index: int, kind: str, size: tuple[int, int], defective: bool) -> np.ndarray:
    """One uint8 grayscale image of the set; defective ones carry one defect of `kind` ('mixed' = any)."""
    return make_sample(seed, index, kind, size, defective)[0]


def make_sample(seed: int, index: int, kind: str, size: tuple[int, int],
                defective: bool) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """(image, mask): the image of `make_image` and, for a defective one, a uint8 mask (255 = defect), else None.

    The mask is where the defect shows at least half its full strength: a soft stain's faint rim
    is left out, as a person outlining it would.
    """
    rng = np.random.default_rng([seed, index, int(defective)])
    image = surface(rng, size)
    mask = None
    if defective:
        chosen = KINDS[int(rng.integers(len(KINDS)))] if kind == "mixed" else kind
        alpha = defect_alpha(rng, chosen, size)
        # Contrast in grey levels: stains are faint but large, lines are strong but thin.
        contrast = rng.uniform(20, 35) if chosen == "stains" else rng.uniform(25, 55)
        sign = -1.0 if rng.random() < 0.7 else 1.0
        image = image + sign * contrast * alpha
        mask = np.where((alpha > 0) & (alpha >= 0.5 * alpha.max()), 255, 0).astype(np.uint8)
    return np.clip(image, 0, 255).astype(np.uint8), mask


def write_set(out: Path, kind: str, size: tuple[int, int], defective: int, ok: int, seed: int = 0, fmt: str = "jpg",
              largest: Optional[tuple[int, int]] = None, masks: bool = False) -> dict:
    """Write out/defect/*.fmt and out/ok/*.fmt (with `masks`, out/masks/<stem>.png too); return counts.

    `largest`: sizes vary from `size` up to it. The images do not depend on `masks`.
    """
    if kind not in KINDS + ("mixed",):
        raise ValueError(f"--kind must be one of {KINDS + ('mixed',)}, got {kind!r}")
    if fmt not in ("jpg", "png"):
        raise ValueError(f"--format must be jpg or png, got {fmt!r}")
    out = Path(out)
    params = [cv2.IMWRITE_JPEG_QUALITY, 92] if fmt == "jpg" else []
    for label, count in (("defect", defective), ("ok", ok)):
        folder = out / label
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            image, mask = make_sample(seed, i, kind, image_size(seed, i, label == "defect", size, largest),
                                      label == "defect")
            _write(folder / f"{label}_{i:04d}.{fmt}", image, params)
            if masks and mask is not None:
                _write(out / "masks" / f"{label}_{i:04d}.png", mask, [])
    return {"defect": defective, "ok": ok, "size": list(size), "largest": list(largest) if largest else None,
            "kind": kind, "format": fmt, "masks": masks}


def _write(path: Path, image: np.ndarray, params: list) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image, params):
        raise OSError(f"could not write {path}")


def _one_size(text: str, whole: str) -> tuple[int, int]:
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) >= 16 for p in parts):
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH or HxW-HxW (each side >= 16), got {whole!r}")
    return int(parts[0]), int(parts[1])


def _sizes(text: str) -> tuple[tuple[int, int], Optional[tuple[int, int]]]:
    """'HxW' (every image) or 'HxW-HxW' (each image's height and width drawn between the two)."""
    if "-" not in text:
        return _one_size(text, text), None
    low, _, high = text.partition("-")
    small, large = _one_size(low, text), _one_size(high, text)
    if large[0] < small[0] or large[1] < small[1]:
        raise argparse.ArgumentTypeError(f"the second size of {text!r} must be at least the first on both sides")
    return small, large


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command line: write one evidence set."""
    p = argparse.ArgumentParser(prog="python -m surface_images.make_set", description=__doc__.split("\n\n")[0])
    p.add_argument("--kind", default="mixed", help=f"one of {', '.join(KINDS)}, or mixed")
    p.add_argument("--size", type=_sizes, default=((240, 400), None), help="HEIGHTxWIDTH of every image, or "
                   "HxW-HxW: each image's height and width drawn uniformly between the two (a set of mixed sizes)")
    p.add_argument("--defective", type=int, default=200)
    p.add_argument("--ok", type=int, default=400)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--format", dest="fmt", choices=("jpg", "png"), default="jpg")
    p.add_argument("--masks", action="store_true", help="also write each defect's pixel truth to masks/<stem>.png "
                   "(the images are the same with or without it)")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    (small, large) = args.size
    info = write_set(args.out, args.kind, small, args.defective, args.ok, args.seed, args.fmt, large, args.masks)
    sizes = f"{small[0]}x{small[1]}" + (f" to {large[0]}x{large[1]}" if large else "")
    print(f"wrote {info['defect']} defect/ and {info['ok']} ok/ {args.fmt} images of {sizes} ({args.kind}) "
          f"{'and their masks/ ' if args.masks else ''}to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
