"""Find labelled grayscale images on disk: DAGM 2007 (official and development layouts),
folder-per-class trees (`defect/`, `ok/`) and plain folders of unlabelled images.

Nothing is read until `LabeledImage.read()`; discovery only checks that the files named by the
label files exist, so a bad data set fails at once with a message naming the path.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
_CLASS_DIR = re.compile(r"^Class(\d+)$", re.IGNORECASE)
_DEV_DEFECT_DIR = re.compile(r"^Class(\d+)_def$", re.IGNORECASE)
EXPECTED_LAYOUTS = (
    "DAGM official (ClassN/{Train,Test}/NNNN.PNG + Label/Labels.txt), "
    "DAGM development (ClassN/ and ClassN_def/ with labels.txt), "
    "folder-per-class (defect/ and ok/), or a folder of images"
)


class DatasetError(ValueError):
    """The data set on disk is missing, malformed or not what the reader expects."""


@dataclass(frozen=True)
class LabeledImage:
    """One image on disk with its label (1 defect, 0 ok, None unknown) and optional weak mask."""

    path: Path
    label: Optional[int]
    mask_path: Optional[Path] = None
    ellipse: Optional[tuple[float, float, float, float, float]] = None  # dev layout: a, b, angle(rad), x, y
    group: str = ""  # e.g. "Class8/Train"

    def read(self) -> np.ndarray:
        """Decode the image as uint8 HxW; DatasetError if unreadable or not 8-bit grayscale."""
        return read_grayscale(self.path)

    def read_mask(self, shape: tuple[int, int]) -> np.ndarray:
        """The weak defect mask (uint8 HxW, 255 on defect); zeros when there is none."""
        if self.mask_path is not None:
            mask = read_grayscale(self.mask_path)
            if mask.shape != tuple(shape):
                mask = cv2.resize(mask, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
            return np.where(mask > 0, 255, 0).astype(np.uint8)
        mask = np.zeros(shape, np.uint8)
        if self.ellipse is not None:
            a, b, angle, x, y = self.ellipse
            cv2.ellipse(mask, (int(round(x)), int(round(y))), (max(1, int(a)), max(1, int(b))), float(np.degrees(angle)), 0, 360, 255, -1)
        return mask


def read_grayscale(path: Path) -> np.ndarray:
    """Read an 8-bit grayscale image; a 3-channel image with equal channels is accepted."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise DatasetError(f"{path}: cannot decode; expected a readable 8-bit grayscale image file")
    if image.dtype != np.uint8:
        raise DatasetError(f"{path}: {image.dtype} pixels; expected 8-bit grayscale")
    if image.ndim == 3:
        if image.shape[2] == 4:
            image = image[:, :, :3]
        if not (np.array_equal(image[:, :, 0], image[:, :, 1]) and np.array_equal(image[:, :, 0], image[:, :, 2])):
            raise DatasetError(f"{path}: colour image with {image.shape[2]} channels; expected 8-bit grayscale")
        image = np.ascontiguousarray(image[:, :, 0])
    return image


def discover(root: Path, split: str | None = None) -> list[LabeledImage]:
    """List the images under `root` (any supported layout); `split` picks DAGM Train/Test."""
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"{root}: no such folder; expected a data set in one of: {EXPECTED_LAYOUTS}")
    if not root.is_dir():
        raise DatasetError(f"{root}: is a file; expected a data set folder")
    found = _discover_dagm_official(root, split)
    if found is None:
        found = _discover_dagm_dev(root)
    if found is None:
        found = _discover_per_class(root, split)
    if found is None:
        found = [LabeledImage(p, None, group=root.name) for p in _images_in(root)]
    if not found:
        raise DatasetError(f"{root}: no images found (split={split!r}); expected one of: {EXPECTED_LAYOUTS}{_other_folders(root)}")
    return found


def _other_folders(root: Path) -> str:
    """The sub-folders that do hold images (`good/`, `bad/`, ...), so the user sees what to rename."""
    held = [(p.name, len(_images_under(p))) for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")]
    held = [(name, n) for name, n in held if n]
    if not held:
        return ""
    listed = ", ".join(f"{name}/ ({n} image{'s' if n != 1 else ''})" for name, n in held[:6])
    return f"; found images only in {listed}: for training, put defective images in defect/ and good ones in ok/"


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _child(folder: Path, name: str) -> Optional[Path]:
    """A sub-folder matched case-insensitively (DAGM archives differ in case)."""
    for p in folder.iterdir():
        if p.is_dir() and p.name.lower() == name.lower():
            return p
    return None


def _discover_dagm_official(root: Path, split: str | None) -> Optional[list[LabeledImage]]:
    """root = data set folder holding ClassN/, or one ClassN/, or one ClassN/<split>/."""
    label_file = _labels_txt(root)
    if label_file is not None:  # root is a split folder itself
        return _read_official_split(root, label_file, f"{root.parent.name}/{root.name}")
    class_dirs = [root] if _is_official_class(root) else [p for p in sorted(root.iterdir()) if p.is_dir() and _CLASS_DIR.match(p.name) and _is_official_class(p)]
    if not class_dirs:
        return None
    found: list[LabeledImage] = []
    for class_dir in class_dirs:
        for split_dir in sorted(p for p in class_dir.iterdir() if p.is_dir() and _labels_txt(p) is not None):
            if split is None or split_dir.name.lower() == split.lower():
                found.extend(_read_official_split(split_dir, _labels_txt(split_dir), f"{class_dir.name}/{split_dir.name}"))
    if not found and split is not None:
        raise DatasetError(f"{root}: no DAGM split folder named {split!r} with Label/Labels.txt; use --split Train or Test")
    return found


def _is_official_class(folder: Path) -> bool:
    return any(p.is_dir() and _labels_txt(p) is not None for p in folder.iterdir())


def _labels_txt(folder: Path) -> Optional[Path]:
    label_dir = _child(folder, "Label")
    if label_dir is None:
        return None
    for p in label_dir.iterdir():
        if p.name.lower() == "labels.txt":
            return p
    return None


def _read_official_split(split_dir: Path, label_file: Path, group: str) -> list[LabeledImage]:
    """Parse Label/Labels.txt: header line, then `id flag image 0 mask-or-0` rows."""
    found = []
    lines = label_file.read_text().splitlines()
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 5 or fields[1] not in ("0", "1"):
            raise DatasetError(f"{label_file}:{number}: {line!r}; expected 'id flag(0/1) image 0 mask-or-0'")
        image = split_dir / fields[2]
        if not image.is_file():
            raise DatasetError(f"{label_file}:{number} names {image}, which does not exist")
        mask = None
        if fields[4] != "0":
            mask = label_file.parent / fields[4]
            if not mask.is_file():
                raise DatasetError(f"{label_file}:{number} names mask {mask}, which does not exist")
        found.append(LabeledImage(image, int(fields[1]), mask, group=group))
    return found


def _discover_dagm_dev(root: Path) -> Optional[list[LabeledImage]]:
    """Development layout: ClassN/ (defect-free) and ClassN_def/ (defective, labels.txt ellipses)."""
    defect_dirs = [p for p in sorted(root.iterdir()) if p.is_dir() and _DEV_DEFECT_DIR.match(p.name)]
    if not defect_dirs:
        return None
    found: list[LabeledImage] = []
    for defect_dir in defect_dirs:
        good_dir = root / defect_dir.name[: -len("_def")]
        if good_dir.is_dir():
            found.extend(LabeledImage(p, 0, group=good_dir.name) for p in _images_in(good_dir))
        found.extend(_read_dev_defects(defect_dir))
    return found


def _read_dev_defects(defect_dir: Path) -> list[LabeledImage]:
    """labels.txt rows: `number a b angle x y` (1-based image number, ellipse in pixels/radians)."""
    label_file = next((p for p in defect_dir.iterdir() if p.name.lower() == "labels.txt"), None)
    if label_file is None:
        raise DatasetError(f"{defect_dir}: no labels.txt; expected ellipse rows 'number a b angle x y'")
    found = []
    for number, line in enumerate(label_file.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        try:
            image_no, a, b, angle, x, y = int(fields[0]), *map(float, fields[1:6])
        except (ValueError, TypeError) as exc:
            raise DatasetError(f"{label_file}:{number}: {line!r}; expected 'number a b angle x y'") from exc
        image = next((defect_dir / f"{image_no}{s}" for s in (".png", ".PNG", ".bmp") if (defect_dir / f"{image_no}{s}").is_file()), None)
        if image is None:
            raise DatasetError(f"{label_file}:{number} names image {image_no}, which does not exist in {defect_dir}")
        found.append(LabeledImage(image, 1, ellipse=(a, b, angle, x, y), group=defect_dir.name))
    return found


def _discover_per_class(root: Path, split: str | None) -> Optional[list[LabeledImage]]:
    """defect/ and ok/ folders, directly under root or under root/<split>/; optional masks/.

    A class folder may hold sub-folders (`defect/scratch/`, `defect/dent/`, ...): their images
    belong to the class, and each sub-folder is the image's group, so the held-out numbers can
    be given per kind of defect. masks/ (beside defect/ and ok/) may hold a mask for any
    defective image, at the image's path inside defect/ (`defect/dent/0042.jpg` ->
    `masks/dent/0042.png`; `_label` may end the name) or, where the name is unique among the
    defective images, at masks/<name>.png; partial coverage is fine. A mask that names no
    defective image is an error (a typo would silently drop it), and so are two files of one
    name in one class folder (`0042.jpg` beside `0042.png`: most often a mask among the images,
    which would train as a defect).
    """
    base = root
    if split is not None and _child(root, split) is not None:
        base = _child(root, split)
    defect_dir, ok_dir = _child(base, "defect"), _child(base, "ok")
    if defect_dir is None and ok_dir is None:
        return None
    masks = _masks_by_key(_child(base, "masks"))
    defect_images = _images_under(defect_dir) if defect_dir is not None else []
    stems = Counter(p.stem for p in defect_images)
    found: list[LabeledImage] = []
    for folder, label, images in ((defect_dir, 1, defect_images), (ok_dir, 0, _images_under(ok_dir) if ok_dir else [])):
        if folder is None:
            continue
        _reject_namesakes(folder, images)
        for p in images:
            mask = None
            if label:
                key = p.relative_to(folder).with_suffix("").as_posix()
                mask = masks.pop(key, None) or (masks.pop(p.stem, None) if stems[p.stem] == 1 else None)
            group = p.parent.relative_to(folder.parent).as_posix()
            found.append(LabeledImage(p, label, mask, group=group))
    if masks:
        key, orphan = sorted(masks.items(), key=lambda kv: kv[1])[0]
        if stems[key] > 1:
            raise DatasetError(f"{orphan}: mask name fits {stems[key]} defective images in sub-folders of {defect_dir}; expected it at "
                               "the image's path inside defect/ (masks/<sub-folder>/<name>.png)")
        raise DatasetError(f"{orphan}: mask names no image in {defect_dir or base / 'defect'}; expected masks/<defect image name>.png "
                           f"({len(masks)} such mask(s))")
    return found


def _images_under(folder: Path) -> list[Path]:
    """Images in `folder` and its sub-folders (hidden ones skipped), in path order."""
    found = []
    for top, dirs, files in os.walk(folder, followlinks=True):  # a linked sub-folder counts, on every Python
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found.extend(Path(top) / f for f in files if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_SUFFIXES)
    return sorted((p for p in found if p.is_file()), key=lambda p: p.relative_to(folder).as_posix())


def _reject_namesakes(folder: Path, images: list[Path]) -> None:
    """Two images of one name in one folder (`a.jpg` and `a.png`, or `a_label.png`): a mask among the images."""
    by_name: dict[tuple[Path, str], list[Path]] = {}
    for p in images:
        by_name.setdefault((p.parent, _without_label(p.stem)), []).append(p)
    pairs = [paths for paths in by_name.values() if len(paths) > 1]
    if pairs:
        listed = "; ".join(" and ".join(str(p) for p in paths) for paths in pairs[:3])
        raise DatasetError(f"{folder}: {len(pairs)} name(s) used by more than one image: {listed}; expected one image per name "
                           "(a mask beside its image would train as an image: masks go in masks/ beside defect/ and ok/, "
                           "named like their image)")


def _masks_by_key(folder: Optional[Path]) -> dict[str, Path]:
    """masks/ files by their path inside masks/ without suffix or `_label` (`dent/0042`, or `0042` at the top)."""
    if folder is None:
        return {}
    found = {}
    for p in _images_under(folder):
        found[_without_label(p.relative_to(folder).with_suffix("").as_posix())] = p
    return found


def _without_label(name: str) -> str:
    """DAGM names a mask like its image plus `_label` (`0042_label.png` is the mask of `0042.png`)."""
    return name[: -len("_label")] if name.endswith("_label") else name


def report_names(names: Sequence[str]) -> list[str]:
    """Each frame's path below the folder all the frames share (`defect/dent/0042.jpg`), as reports list it.

    A bare file name is not enough: `defect/0001.jpg` and `ok/0001.jpg`, or two sub-folders of
    defect/, may share one. Names that are not paths (synthetic frames) come back as they are.
    """
    if not names:
        return []
    try:
        base = os.path.commonpath([str(Path(n).parent) for n in names])
    except ValueError:  # absolute and relative paths mixed: no common folder
        return [Path(n).name for n in names]
    return [Path(n).relative_to(base).as_posix() for n in names]


def find_listed(items: Sequence[LabeledImage], listed: Sequence[str]) -> tuple[list[LabeledImage], list[str]]:
    """The items named by `listed` (report names: paths below any common folder, or bare file names).

    An entry names the item whose path ends with it, so the data may be given from another root
    than training's. Returns (found items in `listed` order, entries found nowhere); an entry
    that names more than one item is a DatasetError.
    """
    by_name: dict[str, list[LabeledImage]] = {}
    for it in items:
        by_name.setdefault(it.path.name, []).append(it)
    found, missing = [], []
    for entry in listed:
        parts = Path(entry).parts
        hits = [it for it in by_name.get(parts[-1], []) if it.path.parts[-len(parts):] == parts]
        if len(hits) > 1:
            raise DatasetError(f"{entry!r} names {len(hits)} files in the data ({hits[0].path}, {hits[1].path}); "
                               "expected one: pass the folder the model was trained on")
        if hits:
            found.append(hits[0])
        else:
            missing.append(entry)
    return found, missing


def summary(images: list[LabeledImage]) -> dict:
    """Counts for metadata and logs."""
    labels = [im.label for im in images]
    return {
        "images": len(images),
        "defective": sum(1 for x in labels if x == 1),
        "ok": sum(1 for x in labels if x == 0),
        "unlabelled": sum(1 for x in labels if x is None),
        "groups": sorted({im.group for im in images}),
    }
