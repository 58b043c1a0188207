"""The data set reader: DAGM official and development layouts, folder-per-class, bad input."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from line_harness.paths import REPO
from surface_images.datasets import DatasetError, discover, summary
from surface_images.synthetic import SyntheticFrames

DAGM = REPO.parent / "shared" / "datasets" / "dagm2007"  # ../shared beside the checkout, as CI lays it


def _write_images(folder: Path, names: list[str], seed: int = 0) -> list:
    folder.mkdir(parents=True, exist_ok=True)
    frames = SyntheticFrames(seed=seed, size=(64, 64), defect_rate=0.5)
    samples = []
    for i, name in enumerate(names):
        sample = frames.sample(i)
        cv2.imwrite(str(folder / name), sample.image)
        samples.append(sample)
    return samples


def _official(root: Path, split: str = "Train", n: int = 4) -> Path:
    split_dir = root / "Class3" / split
    samples = _write_images(split_dir, [f"{i:04d}.PNG" for i in range(1, n + 1)])
    rows = ["1"]
    for i, s in enumerate(samples, start=1):
        if s.label:
            cv2.imwrite(str(split_dir / "Label" / f"{i:04d}_label.PNG"), s.mask) if (split_dir / "Label").mkdir(exist_ok=True) is None else None
            rows.append(f"{i}\t1\t{i:04d}.PNG\t0\t{i:04d}_label.PNG\t")
        else:
            rows.append(f"{i}\t0\t{i:04d}.PNG\t0\t0\t")
    (split_dir / "Label").mkdir(exist_ok=True)
    (split_dir / "Label" / "Labels.txt").write_text("\n".join(rows) + "\n")
    return split_dir


def test_official_layout_from_root_class_or_split_folder(tmp_path):
    split_dir = _official(tmp_path, "Train")
    _official(tmp_path, "Test")
    both = discover(tmp_path)
    assert len(both) == 8
    train = discover(tmp_path, "train")
    assert len(train) == 4 and all(it.group == "Class3/Train" for it in train)
    assert len(discover(tmp_path / "Class3", "Test")) == 4
    assert [it.path.name for it in discover(split_dir)] == [it.path.name for it in train]
    defect = next(it for it in train if it.label == 1)
    assert defect.mask_path is not None and defect.read_mask((64, 64)).max() == 255
    assert defect.read().shape == (64, 64)
    ok = next(it for it in train if it.label == 0)
    assert ok.mask_path is None and not ok.read_mask((64, 64)).any()


def test_development_layout_with_ellipses(tmp_path):
    _write_images(tmp_path / "Class1", ["1.png", "2.png"])
    _write_images(tmp_path / "Class1_def", ["1.png", "2.png"], seed=1)
    (tmp_path / "Class1_def" / "labels.txt").write_text("1\t10\t4\t0.5\t30\t30\n2\t8\t3\t1.0\t20\t40\n")
    found = discover(tmp_path)
    assert summary(found)["defective"] == 2 and summary(found)["ok"] == 2
    mask = next(it for it in found if it.label == 1).read_mask((64, 64))
    assert mask[30, 30] == 255 and mask[0, 0] == 0


def test_folder_per_class_and_plain_folder(tmp_path):
    _write_images(tmp_path / "tree" / "defect", ["a.png"])
    _write_images(tmp_path / "tree" / "ok", ["b.png", "c.jpg"])
    found = discover(tmp_path / "tree")
    assert sorted(it.label for it in found) == [0, 0, 1]
    _write_images(tmp_path / "plain", ["x.png", "y.png"])
    assert [it.label for it in discover(tmp_path / "plain")] == [None, None]


def test_bad_inputs_name_the_path_and_the_expectation(tmp_path):
    with pytest.raises(DatasetError, match="no such folder.*expected"):
        discover(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images found.*a folder of images$"):
        discover(tmp_path / "empty")
    _write_images(tmp_path / "named" / "good", ["a.png", "b.png"])  # a plant's own folder names are listed
    _write_images(tmp_path / "named" / "bad" / "dent", ["c.png"])
    with pytest.raises(DatasetError, match=r"no images found.*found images only in bad/ \(1 image\), good/ \(2 images\): "
                                           r"for training, put defective images in defect/ and good ones in ok/"):
        discover(tmp_path / "named")
    split_dir = _official(tmp_path / "dagm")
    (split_dir / "0002.PNG").unlink()
    with pytest.raises(DatasetError, match=r"Labels.txt:3 names .*0002.PNG, which does not exist"):
        discover(tmp_path / "dagm")
    with pytest.raises(DatasetError, match="split folder named 'Valid'"):
        _official(tmp_path / "dagm2"), discover(tmp_path / "dagm2", "Valid")
    (split_dir / "Label" / "Labels.txt").write_text("1\n1\tyes\n")
    with pytest.raises(DatasetError, match="expected 'id flag"):
        discover(tmp_path / "dagm")


def test_unreadable_and_colour_images_are_rejected(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    colour = np.zeros((8, 8, 3), np.uint8)
    colour[..., 2] = 200
    cv2.imwrite(str(folder / "colour.png"), colour)
    cv2.imwrite(str(folder / "deep.png"), np.zeros((8, 8), np.uint16))
    items = {it.path.name: it for it in discover(folder)}
    with pytest.raises(DatasetError, match="broken.png: cannot decode"):
        items["broken.png"].read()
    with pytest.raises(DatasetError, match="colour.png: colour image"):
        items["colour.png"].read()
    with pytest.raises(DatasetError, match="deep.png: uint16"):
        items["deep.png"].read()


@pytest.mark.skipif(not DAGM.is_dir(), reason="real DAGM class-8 images not present on this machine")
def test_real_dagm_class8_layout_is_read():
    found = discover(DAGM, "Train")
    assert summary(found)["images"] == 500 and summary(found)["defective"] == 150
    assert all(it.mask_path is not None for it in found if it.label == 1)


def test_folder_layout_takes_optional_masks_and_rejects_orphans(tmp_path):
    _write_images(tmp_path / "d" / "defect", ["a.png", "b.png"])
    _write_images(tmp_path / "d" / "ok", ["c.png"])
    (tmp_path / "d" / "masks").mkdir()
    cv2.imwrite(str(tmp_path / "d" / "masks" / "a_label.png"), np.full((64, 64), 255, np.uint8))
    items = {it.path.name: it for it in discover(tmp_path / "d")}
    assert items["a.png"].mask_path.name == "a_label.png" and items["a.png"].read_mask((64, 64)).all()
    assert items["b.png"].mask_path is None and items["c.png"].mask_path is None  # partial coverage is fine
    cv2.imwrite(str(tmp_path / "d" / "masks" / "zz.png"), np.zeros((64, 64), np.uint8))
    with pytest.raises(DatasetError, match="zz.png: mask names no image"):
        discover(tmp_path / "d")


def test_class_folders_may_hold_sub_folders_with_masks_at_the_same_path(tmp_path):
    root = tmp_path / "d"
    _write_images(root / "defect" / "dent", ["a.png", "c.png"])
    _write_images(root / "defect" / "scratch", ["a.png"])  # the same name in another kind's folder is fine
    _write_images(root / "defect", ["b.png"])
    _write_images(root / "ok", ["e.png"])
    _write_images(root / "ok" / "shift2", ["f.jpg"])
    _write_images(root / "ok" / ".thumbnails", ["g.png"])  # hidden folders and files are not images of the set
    _write_images(root / "ok", ["._e.png"])
    (root / "masks" / "dent").mkdir(parents=True)
    cv2.imwrite(str(root / "masks" / "dent" / "a.png"), np.full((64, 64), 255, np.uint8))  # defect/dent/a.png
    cv2.imwrite(str(root / "masks" / "c_label.png"), np.full((64, 64), 255, np.uint8))  # name unique among defects
    found = discover(root)
    by_path = {it.path.relative_to(root).as_posix(): it for it in found}
    assert sorted(by_path) == ["defect/b.png", "defect/dent/a.png", "defect/dent/c.png", "defect/scratch/a.png",
                               "ok/e.png", "ok/shift2/f.jpg"]
    assert [by_path[k].label for k in sorted(by_path)] == [1, 1, 1, 1, 0, 0]
    assert by_path["defect/dent/a.png"].mask_path == root / "masks" / "dent" / "a.png"
    assert by_path["defect/dent/c.png"].mask_path == root / "masks" / "c_label.png"
    assert by_path["defect/scratch/a.png"].mask_path is None and by_path["defect/b.png"].mask_path is None
    assert {k: it.group for k, it in by_path.items()}["defect/dent/a.png"] == "defect/dent"
    assert summary(found)["groups"] == ["defect", "defect/dent", "defect/scratch", "ok", "ok/shift2"]
    # a top-level mask named "a" could be either dent/a or scratch/a: it names no one image
    cv2.imwrite(str(root / "masks" / "a.png"), np.zeros((64, 64), np.uint8))
    with pytest.raises(DatasetError, match=r"masks/a.png: mask name fits 2 defective images in sub-folders of .*defect; "
                                           r"expected it at the image's path inside defect/"):
        discover(root)


@pytest.mark.parametrize("second", ["0042.png", "0042_label.png"])
def test_a_mask_beside_its_image_stops_discovery_naming_both(tmp_path, second):
    _write_images(tmp_path / "d" / "defect", ["0042.jpg", second, "0043.jpg"])
    _write_images(tmp_path / "d" / "ok", ["0001.jpg"])
    with pytest.raises(DatasetError, match=rf"defect: 1 name\(s\) used by more than one image: .*0042.jpg and .*{second}; "
                                           r"expected one image per name .*masks go in masks/"):
        discover(tmp_path / "d")
