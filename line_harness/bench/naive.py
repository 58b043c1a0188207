"""The naive baseline: the original notebook's approach turned into a service.

    .venv/bin/python -m line_harness.bench.naive --model DIR --frames-topic T --results-topic R
        [--group G] [--frames N] [--seconds S] [--backend litert]   (Kafka from KAFKA_* env)

Poll ONE message, decode it, predict it alone (batch of 1), publish its result, wait for the
broker's acknowledgement, commit its offset synchronously; repeat. Same broker, topic and
model as the worker benchmark. Prints a JSON line with frames/s, CPU seconds and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import cv2
import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def serve_naively(client_kwargs: dict, model, frames_topic: str, results_topic: str, group: str,
                  max_frames: int, max_seconds: float) -> dict:
    """Judge frames one by one until max_frames or max_seconds; returns the measurement."""
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.structs import OffsetAndMetadata

    consumer = KafkaConsumer(frames_topic, **client_kwargs, group_id=group, enable_auto_commit=False,
                             auto_offset_reset="earliest", max_poll_records=1)
    producer = KafkaProducer(**client_kwargs, acks="all", linger_ms=0)
    threshold = model.metadata.threshold
    done, first, deadline = 0, None, None
    try:
        while done < max_frames and (deadline is None or time.monotonic() < deadline):
            polled = consumer.poll(timeout_ms=1000, max_records=1)
            for tp, records in polled.items():
                for rec in records:
                    if first is None:
                        first, cpu0 = time.monotonic(), time.process_time()
                        deadline = first + max_seconds
                    image = cv2.imdecode(np.frombuffer(rec.value, np.uint8), cv2.IMREAD_GRAYSCALE)
                    score = float(model.predict(image[None, :, :, None])[0])
                    event = {"event_id": f"{tp.topic}-{tp.partition}-{rec.offset}", "score": score,
                             "verdict": "defect" if score >= threshold else "ok"}
                    producer.send(results_topic, json.dumps(event).encode(), key=rec.key).get(timeout=30)
                    consumer.commit({tp: OffsetAndMetadata(rec.offset + 1, "", -1)})
                    done += 1
    finally:
        elapsed = time.monotonic() - first if first else 0.0
        cpu = time.process_time() - cpu0 if first else 0.0
        consumer.close()
        producer.close(5)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"frames": done, "seconds": elapsed, "frames_per_s": done / elapsed if elapsed else 0.0,
            "cpu_seconds": cpu, "cpu_cores": cpu / elapsed if elapsed else None,
            "frames_per_cpu_s": done / cpu if cpu else None, "peak_rss_mb": usage.ru_maxrss / 1024,
            "backend": model.backend}


def main(argv=None) -> int:
    """CLI: run the naive service on a pre-loaded topic and print one JSON line."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, required=True, help="model base or version folder")
    p.add_argument("--frames-topic", required=True)
    p.add_argument("--results-topic", required=True)
    p.add_argument("--group", default="naive-baseline")
    p.add_argument("--frames", type=int, default=300, help="stop after this many frames")
    p.add_argument("--seconds", type=float, default=60.0, help="or after this many seconds from the first frame")
    p.add_argument("--backend", default="auto", choices=("auto", "litert", "tensorflow"))
    args = p.parse_args(argv)
    from line_runtime.model import latest_version, load_model, resolve_backend
    from line_runtime.settings import KafkaClientSettings, load_settings
    from line_runtime.variants import choose_variant
    version_dir = latest_version(args.model)
    if version_dir is None:
        p.error(f"--model {args.model} holds no model version")
    # the variant the worker serves by default, so that the two loops judge with the same network
    model = load_model(choose_variant(version_dir, "auto", resolve_backend(version_dir, args.backend)).folder, backend=args.backend)
    model.warmup([1])
    kw = load_settings(KafkaClientSettings).kafka_client_kwargs()
    result = serve_naively(kw, model, args.frames_topic, args.results_topic, args.group, args.frames, args.seconds)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
