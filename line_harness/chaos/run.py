"""`deploy/chaos.sh`: the fault suite against real workers, simulator and broker.

    python -m line_harness.chaos.run [--short] [--only kill,restart,rebalance,corrupt,kill-eos]
        [--kills 10] [--corrupt-frames 3000] [--soak] [--soak-minutes 20]

Scenarios: SIGKILL the worker at random moments during a steady stream (at-least-once, and
exactly-once); restart the broker mid-stream; a group of workers with a join, a leave and a
SIGKILL; 5% corrupt frames at full speed (>= 80% of clean throughput, every bad frame in the
dead-letter topic with its reason); with --soak, 20 minutes at 70% load with the worker's RSS
curve. Each ends with: produced = judged + dead-lettered, zero lost, duplicates counted.

Starts its own broker (needed for the restart) unless KAFKA_BOOTSTRAP_SERVERS is set. Uses the
tiny model (training.tiny_model) at 64x64 and 64x64 PNG frames. Writes run/chaos/results.json;
exit code 1 when a scenario fails.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from line_harness.chaos import scenarios
from line_harness.kafka.session import broker_session
from line_harness.paths import REPO
from line_harness.processes import exit_on_signals

ALL = ("kill", "kill-eos", "restart", "rebalance", "corrupt")


def build_model(out_dir: Path, size: int = 64) -> Path:
    """The tiny model at size x size in out_dir/models (built once)."""
    from line_runtime.model import latest_version
    from training.tiny_model import build_tiny_model
    base = out_dir / "models"
    if latest_version(base) is None:
        build_tiny_model(base, version=1, input_size=(size, size))
    return base


def run_scenarios(ctx: "scenarios.Ctx", names: list[str], kills: int, corrupt_frames: int, soak_minutes: float = 0,
                  log=print) -> list[dict]:
    """Run the named scenarios in order; every result dict has 'passed' and, mostly, 'check'."""
    table = {
        "kill": lambda: scenarios.sigkill(ctx, kills=kills),
        "kill-eos": lambda: scenarios.sigkill(ctx, kills=max(1, kills // 2), exactly_once=True),
        "restart": lambda: scenarios.broker_restart(ctx),
        "rebalance": lambda: scenarios.rebalance(ctx),
        "corrupt": lambda: scenarios.corrupt(ctx, frames=corrupt_frames),
        "soak": lambda: scenarios.soak(ctx, minutes=soak_minutes),
    }
    out = []
    for name in names:
        t0 = time.monotonic()
        log(f"== {name}")
        result = table[name]()
        result["seconds"] = round(time.monotonic() - t0, 1)
        out.append(result)
        log(f"   {'PASS' if result.get('passed') else 'FAIL' if result.get('passed') is False else 'SKIP'} "
            f"in {result['seconds']:.0f}s: {result.get('check', result.get('skipped', ''))}")
        if name == "corrupt":
            c, b = result["clean"], result["corrupt"]
            log(f"   throughput per worker CPU-second clean {c['frames_per_cpu_s']:.0f} vs corrupt "
                f"{b['frames_per_cpu_s']:.0f} = {result['throughput_ratio']:.2f} (wall clock {c['frames_per_s']:.0f} "
                f"vs {b['frames_per_s']:.0f} frames/s = {result['wall_clock_ratio']:.2f}); "
                f"dead letters {result['dead_by_reason']} (expected {result['expected_dead_by_reason']})")
        if name == "soak":
            log(f"   RSS growth after warm-up {result['rss_growth_after_warmup']}, curve {result['rss_mb_curve']}")
    return out


def main(argv=None) -> int:
    """CLI: run the suite, write results.json, exit 1 on any failure."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--short", action="store_true", help="CI size: 3 kills, no exactly-once kills")
    p.add_argument("--only", default=None, help=f"comma-separated subset of {','.join(ALL)}")
    p.add_argument("--kills", type=int, default=10)
    p.add_argument("--corrupt-frames", type=int, default=3000)
    p.add_argument("--soak", action="store_true", help="also run the soak (long)")
    p.add_argument("--soak-minutes", type=float, default=20.0)
    p.add_argument("--out", type=Path, default=REPO / "run" / "chaos")
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # for the children
    exit_on_signals()
    names = args.only.split(",") if args.only else list(ALL)
    if args.short:
        args.kills, args.corrupt_frames = min(args.kills, 3), min(args.corrupt_frames, 3000)
        names = [n for n in names if n != "kill-eos"] if not args.only else names
    if args.soak:
        names.append("soak")
    args.out.mkdir(parents=True, exist_ok=True)
    model = build_model(args.out)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with broker_session(args.out / f"kafka-{os.getpid()}") as broker:
        ctx = scenarios.Ctx(broker.local, broker.kafka_env, broker.client_kwargs, model, args.out)
        results = run_scenarios(ctx, names, args.kills, args.corrupt_frames, args.soak_minutes,
                                log=lambda s: print(s, flush=True))
    doc = {"command": " ".join(sys.argv), "started_utc": started, "load_average": os.getloadavg(),
           "scenarios": results}
    (args.out / "results.json").write_text(json.dumps(doc, indent=2, default=str))
    failed = [r["scenario"] for r in results if r.get("passed") is False]
    print(f"{len(results) - len(failed)} of {len(results)} scenarios passed" + (f"; FAILED: {failed}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
