"""The image-level evidence-set generator: folder layout, sizes, formats, determinism."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from surface_images.datasets import discover
from surface_images.make_set import KINDS, main, make_image, surface, write_set


def test_every_kind_marks_defective_images_and_leaves_ok_ones_clean():
    for kind in KINDS:
        ok = make_image(3, 0, kind, (60, 100), defective=False)
        bad = make_image(3, 0, kind, (60, 100), defective=True)
        assert ok.shape == bad.shape == (60, 100) and ok.dtype == np.uint8
        assert np.array_equal(make_image(3, 0, kind, (60, 100), True), bad)  # pure function of (seed, index)
        assert not np.array_equal(make_image(3, 1, kind, (60, 100), True), bad)


def test_writes_a_folder_per_class_tree_that_discover_reads(tmp_path):
    info = write_set(tmp_path / "set", "mixed", (48, 80), defective=3, ok=5, seed=1, fmt="png")
    assert info["defect"] == 3 and info["ok"] == 5
    items = discover(tmp_path / "set")
    assert sorted(it.label for it in items) == [0] * 5 + [1] * 3
    assert all(it.mask_path is None for it in items)  # image-level labels only
    assert cv2.imread(str(items[0].path), cv2.IMREAD_UNCHANGED).shape == (48, 80)


def test_masks_are_the_defects_pixel_truth_and_leave_the_images_as_they_were(tmp_path, capsys):
    write_set(tmp_path / "plain", "mixed", (48, 80), defective=4, ok=2, seed=5, fmt="png")
    assert main(["--kind", "mixed", "--size", "48x80", "--defective", "4", "--ok", "2", "--seed", "5", "--format", "png",
                 "--masks", "--out", str(tmp_path / "truth")]) == 0
    assert "masks/" in capsys.readouterr().out
    for label in ("defect", "ok"):  # the same images, masks or not
        assert [p.read_bytes() for p in sorted((tmp_path / "truth" / label).iterdir())] == \
            [p.read_bytes() for p in sorted((tmp_path / "plain" / label).iterdir())]
    items = discover(tmp_path / "truth")
    defects = [it for it in items if it.label == 1]
    assert len(defects) == 4 and all(it.mask_path is not None for it in defects)  # one per defect, none for ok frames
    assert sorted(p.name for p in (tmp_path / "truth" / "masks").iterdir()) == [f"defect_{i:04d}.png" for i in range(4)]
    for it in defects:  # the mask marks where the image departs from the same frame drawn without its defect
        image = cv2.imread(str(it.path), cv2.IMREAD_GRAYSCALE).astype(int)
        mask = cv2.imread(str(it.mask_path), cv2.IMREAD_GRAYSCALE)
        assert set(np.unique(mask)) == {0, 255}
        index = int(it.path.stem.split("_")[1])
        clean = np.random.default_rng([5, index, 1])
        background = np.clip(surface(clean, (48, 80)), 0, 255).astype(int)
        change = np.abs(image - background)
        assert change[mask == 255].mean() > 3 * change[mask == 0].mean()


def test_command_line_writes_jpeg_of_the_requested_size(tmp_path, capsys):
    assert main(["--kind", "cracks", "--size", "40x72", "--defective", "2", "--ok", "2", "--out", str(tmp_path / "s")]) == 0
    files = sorted((tmp_path / "s" / "defect").glob("*.jpg"))
    assert len(files) == 2 and cv2.imread(str(files[0]), cv2.IMREAD_GRAYSCALE).shape == (40, 72)
    assert "40x72" in capsys.readouterr().out
    with pytest.raises(ValueError, match="--kind"):
        write_set(tmp_path / "t", "dents", (40, 40), 1, 1)


def test_a_size_range_gives_every_image_its_own_size_within_it_and_fixed_sizes_stay_as_they_were(tmp_path, capsys):
    assert main(["--kind", "mixed", "--size", "40x60-80x120", "--defective", "6", "--ok", "6", "--format", "png",
                 "--out", str(tmp_path / "r")]) == 0
    assert "40x60 to 80x120" in capsys.readouterr().out
    shapes = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE).shape for p in sorted((tmp_path / "r").rglob("*.png"))]
    assert len(shapes) == 12 and all(40 <= h <= 80 and 60 <= w <= 120 for h, w in shapes)
    assert len(set(shapes)) > 6  # sizes vary from image to image
    main(["--kind", "mixed", "--size", "40x60-80x120", "--defective", "6", "--ok", "6", "--format", "png",
          "--out", str(tmp_path / "r2")])
    assert [p.read_bytes() for p in sorted((tmp_path / "r2").rglob("*.png"))] == \
        [p.read_bytes() for p in sorted((tmp_path / "r").rglob("*.png"))]  # the same command rebuilds the same set
    # a fixed size draws nothing more: the same images as a set written without ranges
    write_set(tmp_path / "f", "blobs", (48, 80), defective=1, ok=1, seed=2, fmt="png")
    fixed = cv2.imread(str(tmp_path / "f" / "defect" / "defect_0000.png"), cv2.IMREAD_GRAYSCALE)
    assert np.array_equal(fixed, make_image(2, 0, "blobs", (48, 80), True))
    with pytest.raises(SystemExit):
        main(["--size", "80x120-40x60", "--out", str(tmp_path / "bad")])  # the larger size must come second
