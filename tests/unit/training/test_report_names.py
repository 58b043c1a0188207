"""How reports name frames, and how `evaluate --holdout` finds them again: a bare file name may repeat."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from surface_images.datasets import DatasetError, LabeledImage, find_listed, report_names
from training import metrics


def test_report_names_are_paths_below_the_shared_folder():
    assert report_names(["/d/set/defect/0001.jpg", "/d/set/ok/0001.jpg", "/d/set/defect/dent/7.png"]) == [
        "defect/0001.jpg", "ok/0001.jpg", "defect/dent/7.png"]
    assert report_names(["set/defect/a.jpg", "set/ok/b.jpg"]) == ["defect/a.jpg", "ok/b.jpg"]  # a relative --data
    assert report_names(["/dagm/Class8/Train/0001.PNG", "/dagm/Class8/Train/0002.PNG"]) == ["0001.PNG", "0002.PNG"]
    assert report_names(["synthetic:0:3:blobs"]) == ["synthetic:0:3:blobs"]
    assert report_names([]) == []


def test_listed_frames_are_found_from_another_root_and_never_confused():
    items = [LabeledImage(Path(p), label) for p, label in (("/copy/set/defect/0001.jpg", 1), ("/copy/set/ok/0001.jpg", 0),
                                                           ("/copy/set/ok/0002.jpg", 0))]
    found, missing = find_listed(items, ["ok/0001.jpg", "defect/0001.jpg", "ok/0009.jpg"])
    assert [it.label for it in found] == [0, 1] and missing == ["ok/0009.jpg"]
    # a report of bare names (before paths were stored) still works where the name is unique, and says so where not
    assert find_listed(items, ["0002.jpg"]) == ([items[2]], [])
    with pytest.raises(DatasetError, match=r"'0001.jpg' names 2 files in the data .*expected one"):
        find_listed(items, ["0001.jpg"])


def test_by_folder_counts_the_frames_judged_right_in_each_folder():
    names = ["defect/dent/1.jpg", "defect/dent/2.jpg", "defect/scratch/3.jpg", "ok/4.jpg", "ok/5.jpg", "top.jpg"]
    labels = np.array([1, 1, 1, 0, 0, 0])
    scores = np.array([0.9, 0.2, 0.7, 0.6, 0.1, 0.0])
    folders = metrics.by_folder(labels, scores, 0.5, names)
    assert folders == {".": {"frames": 1, "right": 1}, "defect/dent": {"frames": 2, "right": 1},
                       "defect/scratch": {"frames": 1, "right": 1}, "ok": {"frames": 2, "right": 1}}
    assert metrics.folder_text(folders) == ". 1/1, defect/dent 1/2, defect/scratch 1/1, ok 1/2"
    with pytest.raises(ValueError, match="5 names but 6 scores"):
        metrics.by_folder(labels, scores, 0.5, names[:5])
