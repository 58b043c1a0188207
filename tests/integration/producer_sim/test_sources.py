"""Image sources of the simulator: synthetic pool, encodings, DAGM folders and their labels, bad folders."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from kafka import KafkaConsumer

from line_contracts.frame import Encoding, FrameHeaders, TruthLabel
from producer_sim.commands import open_producer
from producer_sim.run import LineRun
from producer_sim.settings import SimSettings
from producer_sim.sources import SourceError, box_of, build_pool
from surface_images.synthetic import SyntheticFrames


def make_fake_dagm(root: Path, count: int = 12, size: int = 64) -> dict[int, int]:
    """A tiny DAGM-official layout (Class8/Train + Label/Labels.txt) from synthetic images.

    Pixel (0, 0) of image i holds i, so a frame read back from Kafka names its source image.
    Returns {image index: label}.
    """
    split = root / "Class8" / "Train"
    (split / "Label").mkdir(parents=True)
    defective = SyntheticFrames(seed=7, size=(size, size), defect_rate=1.0)
    good = SyntheticFrames(seed=8, size=(size, size), defect_rate=0.0)
    rows, labels = ["1"], {}
    for i in range(count):
        sample = (defective if i % 3 == 0 else good).sample(i)
        image = sample.image.copy()
        image[0, 0] = i
        name = f"{1000 + i}.PNG"
        cv2.imwrite(str(split / name), image)
        mask = "0"
        if sample.label:
            mask = f"{1000 + i}_label.PNG"
            cv2.imwrite(str(split / "Label" / mask), sample.mask)
        rows.append(f"{1000 + i}\t{sample.label}\t{name}\t0\t{mask}\t")
        labels[i] = sample.label
    (split / "Label" / "Labels.txt").write_text("\n".join(rows) + "\n")
    return labels


def _decode(value: bytes, encoding: Encoding, width: int, height: int) -> np.ndarray:
    if encoding is Encoding.RAW:
        return np.frombuffer(value, np.uint8).reshape(height, width)
    return cv2.imdecode(np.frombuffer(value, np.uint8), cv2.IMREAD_UNCHANGED)


@pytest.mark.parametrize("encoding", list(Encoding))
def test_synthetic_pool_encodes_each_format_and_resizes(encoding):
    settings = SimSettings(encoding=encoding, pool_size=5, frame_width=96, frame_height=64, defect_rate=0.5, seed=3)
    pool = build_pool(settings)
    assert len(pool.frames) == 5 and pool.encoding is encoding
    gen = SyntheticFrames(seed=3, size=(64, 96), defect_rate=0.5)
    for i, frame in enumerate(pool.frames):
        image = _decode(frame.value, encoding, frame.width, frame.height)
        assert image.shape == (64, 96) and image.dtype == np.uint8
        assert (frame.width, frame.height) == (96, 64)
        expected = gen.sample(i)
        assert frame.truth == (TruthLabel.DEFECT if expected.label else TruthLabel.OK)
        if encoding is not Encoding.JPEG:  # lossless: exactly the generator's pixels
            assert np.array_equal(image, expected.image)
    assert cv2.imdecode(np.frombuffer(pool.good_png, np.uint8), cv2.IMREAD_UNCHANGED).shape == (64, 96)


def test_synthetic_defect_rate_is_respected():
    pool = build_pool(SimSettings(pool_size=200, defect_rate=0.25, frame_width=64, frame_height=64))
    defects = sum(f.truth is TruthLabel.DEFECT for f in pool.frames)
    assert 30 <= defects <= 70  # 50 expected; binomial sd ~6


def test_dagm_folder_labels_reach_the_pool(tmp_path):
    labels = make_fake_dagm(tmp_path)
    pool = build_pool(SimSettings(source_dir=tmp_path, pool_size=100))
    assert len(pool.frames) == len(labels)  # pool capped at the folder's size, each image once
    seen = set()
    for frame in pool.frames:
        index = int(_decode(frame.value, Encoding.PNG, frame.width, frame.height)[0, 0])
        seen.add(index)
        assert frame.truth == (TruthLabel.DEFECT if labels[index] else TruthLabel.OK), frame.origin
    assert seen == set(labels)


def test_labelled_folder_is_sampled_to_the_requested_defect_rate(tmp_path):
    make_fake_dagm(tmp_path)
    pool = build_pool(SimSettings(source_dir=tmp_path, pool_size=40, defect_rate=0.25))
    assert len(pool.frames) == 40
    assert sum(f.truth is TruthLabel.DEFECT for f in pool.frames) == 10


def test_plain_folder_has_no_truth(tmp_path):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"img{i}.png"), np.full((32, 48), i * 50, np.uint8))
    pool = build_pool(SimSettings(source_dir=tmp_path))
    assert len(pool.frames) == 3 and all(f.truth is None for f in pool.frames)


def test_empty_folder_is_a_clear_error(tmp_path):
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(SourceError) as err:
        build_pool(SimSettings(source_dir=tmp_path))
    assert str(tmp_path) in str(err.value) and "no images" in str(err.value)


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(SourceError, match="SIM_SOURCE_DIR"):
        build_pool(SimSettings(source_dir=tmp_path / "nope"))


def test_broken_dagm_label_file_is_a_clear_error(tmp_path):
    make_fake_dagm(tmp_path, count=4)
    labels_txt = tmp_path / "Class8" / "Train" / "Label" / "Labels.txt"
    lines = labels_txt.read_text().splitlines()
    lines[2] = "1001\tmaybe\t1001.PNG\t0\t0"
    labels_txt.write_text("\n".join(lines) + "\n")
    with pytest.raises(SourceError) as err:
        build_pool(SimSettings(source_dir=tmp_path))
    assert str(labels_txt) in str(err.value)


def test_dagm_labels_and_truth_boxes_carried_through_kafka(tmp_path, kafka_bootstrap, new_topic):
    labels = make_fake_dagm(tmp_path, count=10)
    topic = new_topic(partitions=1)
    settings = SimSettings(kafka_bootstrap_servers=kafka_bootstrap, frames_topic=topic, source_dir=tmp_path,
                           fps=200, frames=20, status_interval_s=60)
    producer = open_producer(settings)
    try:
        summary = LineRun(settings, build_pool(settings), producer, threading.Event(), None).run()
    finally:
        producer.close()
    assert summary.acked == 20 and summary.lost == 0
    consumer = KafkaConsumer(topic, bootstrap_servers=[kafka_bootstrap], auto_offset_reset="earliest",
                             consumer_timeout_ms=5000)
    records = []
    for record in consumer:
        records.append(record)
        if len(records) == 20:
            break
    consumer.close()
    assert len(records) == 20
    for record in records:
        headers = FrameHeaders.from_kafka(record.headers)
        index = int(_decode(record.value, headers.encoding, headers.width, headers.height)[0, 0])
        assert headers.truth_label == (TruthLabel.DEFECT if labels[index] else TruthLabel.OK)
        # a defect's truth box is its mask's bounding box (the worker copies it into the event for `watch`)
        mask = cv2.imread(str(tmp_path / "Class8" / "Train" / "Label" / f"{1000 + index}_label.PNG"), cv2.IMREAD_GRAYSCALE)
        assert headers.truth_box == (box_of(mask) if labels[index] else None)
    # 20 frames cycle the 10-image pool twice: every image went out exactly twice.
    counts = np.bincount([int(_decode(r.value, Encoding.PNG, 64, 64)[0, 0]) for r in records], minlength=10)
    assert counts.tolist() == [2] * 10
