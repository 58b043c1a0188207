"""Where a frame of another size lies in the model input: one rule for training and the worker."""

import numpy as np
import pytest

from line_runtime.framing import Placement, fit_to_frame, fitted_size, place, stretch_to_frame


def test_fit_keeps_the_aspect_centres_the_frame_and_never_enlarges():
    wide = place((100, 400), (200, 200), "fit")  # shrunk by 2: 50x200, centred vertically
    assert (wide.top, wide.left, wide.height, wide.width) == (75, 0, 50, 200)
    small = place((30, 50), (64, 64), "fit")     # fits: unscaled, centred
    assert (small.top, small.left, small.height, small.width) == (17, 7, 30, 50)
    assert fitted_size((30, 50), (64, 64)) == (30, 50)
    assert place((64, 64), (64, 64), "fit") == Placement.whole(64, 64)


@pytest.mark.parametrize("policy", ["resize", "reject"])
def test_other_policies_fill_the_input(policy):
    where = place((96, 128), (64, 64), policy)
    assert (where.top, where.left, where.height, where.width) == (0, 0, 64, 64)
    assert where.to_frame(32, 16) == (64.0, 24.0)  # stretched: 2x across, 1.5x down


def test_input_pixels_read_back_in_frame_pixels_clipped_to_the_frame():
    where = place((100, 400), (200, 200), "fit")
    assert where.to_frame(100, 100) == (200.0, 50.0)   # the input's centre is the frame's centre
    assert where.to_frame(0, 0) == (0.0, 0.0)          # in the mirrored border: clipped to the frame's edge
    assert where.to_frame(200, 200) == (400.0, 100.0)


def test_cell_coverage_is_the_part_of_each_cell_on_the_frame():
    where = place((100, 400), (200, 200), "fit")       # frame rows 75..125 of the input
    coverage = where.cell_coverage(8, 8)                # cells of 25x25 input pixels
    assert coverage[:, 0] == pytest.approx([0, 0, 0, 1, 1, 0, 0, 0])
    assert np.all(coverage[3] == 1.0)
    odd = place((30, 50), (64, 64), "fit").cell_coverage(8, 8)  # rows 17..47, cols 7..57 of 8-pixel cells
    assert odd[2, 0] == pytest.approx((24 - 17) / 8 * (8 - 7) / 8)
    assert odd[0].sum() == 0 and odd[7].sum() == 0


def test_fit_and_stretch_give_the_input_size():
    image = np.arange(30 * 50, dtype=np.uint16).reshape(30, 50).astype(np.uint8)
    fitted = fit_to_frame(image, (64, 64))
    assert fitted.shape == (64, 64) and np.array_equal(fitted[17:47, 7:57], image)
    assert np.array_equal(place((30, 50), (64, 64)).crop_content(fitted), image)
    assert stretch_to_frame(image, (64, 64)).shape == (64, 64)
    assert fit_to_frame(image, (30, 50)) is image and stretch_to_frame(image, (30, 50)) is image


def test_an_unknown_policy_is_named():
    with pytest.raises(ValueError, match="'crop'"):
        place((10, 10), (20, 20), "crop")
