"""Defect regions from a map: boxes in frame pixels, strongest first, the peak always a region."""

import numpy as np
import pytest

from line_contracts.events import Box, DefectEvent
from line_runtime.framing import place
from line_runtime.regions import find_regions, grid_cell


def test_two_blobs_become_two_boxes_in_frame_pixels_strongest_first():
    cells = np.zeros((8, 16), np.float32)
    cells[1:3, 2:4] = 0.7          # rows 1-2, cols 2-3
    cells[5, 10:14] = 0.95         # row 5, cols 10-13
    loc = find_regions(cells, frame_height=64, frame_width=256)
    assert (loc.map_height, loc.map_width) == (8, 16)
    assert [r.peak for r in loc.regions] == pytest.approx([0.95, 0.7])
    strongest, second = loc.regions
    assert strongest.box == Box(x=160, y=40, width=64, height=8)   # cells are 16 px wide, 8 px high
    assert strongest.area_px == 4 * 16 * 8
    assert second.box == Box(x=32, y=8, width=32, height=16)


def test_a_map_below_the_level_still_points_at_its_peak():
    cells = np.full((4, 4), 0.1, np.float32)
    cells[3, 0] = 0.3
    loc = find_regions(cells, 100, 100, level=0.5)
    assert len(loc.regions) == 1
    assert loc.regions[0].box == Box(x=0, y=75, width=25, height=25)


def test_at_most_max_regions_and_non_integer_cell_sizes_stay_inside_the_frame():
    cells = np.zeros((7, 7), np.float32)
    cells[::2, ::2] = np.linspace(0.5, 1.0, 16).reshape(4, 4)
    loc = find_regions(cells, 101, 99, max_regions=3)
    assert len(loc.regions) == 3
    assert loc.regions[0].peak == pytest.approx(1.0)
    for region in find_regions(cells, 101, 99, max_regions=50).regions:
        assert region.box.x + region.box.width <= 99 and region.box.y + region.box.height <= 101


def test_non_finite_cells_do_not_break_it_and_bad_maps_are_refused():
    cells = np.array([[np.nan, 0.2], [np.inf, 0.1]], np.float32)
    assert find_regions(cells, 10, 10).regions[0].box == Box(x=0, y=5, width=5, height=5)
    with pytest.raises(ValueError, match="2-D"):
        find_regions(np.zeros((2, 2, 2)), 10, 10)
    with pytest.raises(ValueError, match="max_regions"):
        find_regions(np.zeros((2, 2)), 10, 10, max_regions=0)


def test_grid_cell_of_a_box_centre():
    assert grid_cell(Box(x=0, y=0, width=10, height=10), 400, 400) == (0, 0)
    assert grid_cell(Box(x=390, y=390, width=10, height=10), 400, 400) == (3, 3)
    assert grid_cell(Box(x=150, y=250, width=20, height=20), 400, 400) == (2, 1)


def test_a_version_1_event_still_reads_and_boxes_overlap_as_rectangles():
    v1 = ('{"schema_version":1,"event_id":"f-0-1","frame":{"topic":"f","partition":0,"offset":1,"camera_id":"c",'
          '"line_id":"l","frame_seq":1,"capture_time_ns":1,"truth_label":null},"verdict":"ok","score":0.1,'
          '"threshold":0.5,"model":{"name":"m","version":"1","backend":"litert"},"worker_id":"w","timings":'
          '{"consumed_ns":1,"inferred_ns":1,"published_ns":1,"capture_to_publish_ms":0.0,"inference_ms":1.0,'
          '"batch_size":1}}')
    event = DefectEvent.model_validate_json(v1)
    assert event.localisation is None and event.evidence is None and event.frame.truth_box is None
    a = Box(x=0, y=0, width=10, height=10)
    assert a.overlaps(Box(x=9, y=9, width=5, height=5))
    assert not a.overlaps(Box(x=10, y=0, width=5, height=5))


def test_a_fitted_frame_gets_boxes_in_its_own_pixels_and_none_in_the_mirrored_border():
    where = place((32, 64), (64, 64), "fit")  # the frame is input rows 16..48; rows 0..16 mirror it
    cells = np.zeros((8, 8), np.float32)
    cells[3, 5] = 0.9   # input y 24..32, x 40..48: the defect
    cells[0, 5] = 1.0   # its mirror image in the border, even stronger
    loc = find_regions(cells, 32, 64, placement=where)
    assert len(loc.regions) == 1
    assert loc.regions[0].box == Box(x=40, y=8, width=8, height=8) and loc.regions[0].peak == pytest.approx(0.9)
    assert loc.regions[0].area_px == 64
    assert len(find_regions(cells, 32, 64).regions) == 2  # without the placement the copy would be reported
    flat = find_regions(np.zeros((8, 8), np.float32), 32, 64, placement=where)
    assert flat.regions[0].box.y == 0 and flat.regions[0].box.height == 8  # the peak of a flat map: on the frame
    with pytest.raises(ValueError, match="64x32"):
        find_regions(cells, 64, 64, placement=where)


def test_a_shrunk_frame_scales_its_boxes_back():
    where = place((100, 400), (200, 200), "fit")  # shrunk by 2 into input rows 75..125
    cells = np.zeros((8, 8), np.float32)
    cells[3, 2] = 0.8   # input x 50..75, y 75..100 -> frame x 100..150, y 0..50
    box = find_regions(cells, 100, 400, placement=where).regions[0].box
    assert box == Box(x=100, y=0, width=50, height=50)
