"""Worker frames/s vs the model alone on 512x512 PNG frames (slow; not in the default run).

    .venv/bin/python -m pytest -m slow tests/test_worker_perf.py -s
    WORKER_PERF_MODEL=run/bench/models/1 WORKER_PERF_FRAMES=300 WORKER_PERF_BATCH=8 ... (a real model)

Same run, same machine, same batch size: `LoadedModel.predict` in a tight loop on frames already
decoded in memory (the ceiling), then `python -m worker` on a 3-partition topic pre-loaded with
the frames, measured from the first to the last result event.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from line_contracts.frame import FrameHeaders, frame_key
from line_harness.readers import read_topic
from line_harness.worker_process import WorkerProcess

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


def test_worker_throughput_is_close_to_the_model_alone(kafka_bootstrap, new_topic, new_group, tmp_path):
    from kafka import KafkaProducer

    from line_runtime.model import load_model
    from surface_images.synthetic import SyntheticFrames
    n = int(os.environ.get("WORKER_PERF_FRAMES", "1500"))
    batch = int(os.environ.get("WORKER_PERF_BATCH", "32"))
    model_dir = os.environ.get("WORKER_PERF_MODEL")
    if model_dir:
        model_dir = Path(model_dir).resolve()
    else:
        from training.tiny_model import build_tiny_model
        model_dir = build_tiny_model(tmp_path / "models", 1, input_size=(512, 512))
    frames, results, dlq = new_topic(3, "perf-frames"), new_topic(3, "perf-results"), new_topic(1, "perf-dlq")
    synthetic = SyntheticFrames(seed=1, size=(512, 512))
    images = [synthetic.sample(i).image for i in range(40)]
    pngs = [cv2.imencode(".png", img)[1].tobytes() for img in images]
    producer = KafkaProducer(bootstrap_servers=[kafka_bootstrap], linger_ms=20, max_request_size=4 << 20)
    for i in range(n):
        headers = FrameHeaders(camera_id=f"cam-{i % 6}", line_id="line-1", frame_seq=i,
                               capture_time_ns=time.time_ns(), encoding="png", width=512, height=512)
        producer.send(frames, value=pngs[i % 40], key=frame_key(headers.camera_id), headers=headers.to_kafka())
    producer.flush(60)
    producer.close()

    model = load_model(model_dir)
    decoded = np.stack([images[i % 40] for i in range(batch)])[..., None]
    model.predict(decoded)
    start, done = time.perf_counter(), 0
    while done < min(n, 400):
        model.predict(decoded)
        done += batch
    model_fps = done / (time.perf_counter() - start)
    backend = model.backend
    del model

    worker = WorkerProcess(kafka_bootstrap, model_dir.parent, frames, results, dlq, new_group(),
                           tmp_path / "worker.log", max_batch_size=batch, max_batch_wait_ms=20,
                           model_backend=backend)
    worker.wait_ready(300)
    events = read_topic(kafka_bootstrap, results, n, timeout_s=1000)
    assert len(events) == n, worker.log_tail()
    published = sorted(ev["timings"]["published_ns"] for ev in events)
    worker_fps = (n - 1) / ((published[-1] - published[0]) / 1e9)
    mean_batch = sum(ev["timings"]["batch_size"] for ev in events) / n
    print(f"\n{model_dir} backend={backend} batch={batch}: model alone {model_fps:.1f} frames/s, "
          f"worker {worker_fps:.1f} frames/s (mean batch {mean_batch:.1f}), worker/model {worker_fps / model_fps:.2f}")
    assert worker.stop() == 0
    assert worker_fps >= 0.8 * model_fps
