"""`deploy/chaos.sh`: the fault suite against real workers, simulator and broker.

    python -m line_harness.chaos.run [--short] [--only kill,kill-eos,restart,rebalance,corrupt,publish,storm,storm-eos,
        evidence] [--kills 10] [--corrupt-frames 3000] [--storm-minutes 10] [--storm-eos-minutes M]
        [--outage-s 20] [--broker-away-s 130] [--evidence-outage-s 60] [--soak] [--soak-minutes 20]

Scenarios: SIGKILL the worker at random moments during a steady stream (at-least-once, and
exactly-once); restart the broker mid-stream; a group of workers with a join, a leave and a
SIGKILL; 5% bad frames of every kind in producer_sim.faults at full speed (good-frame throughput
>= 80% of clean, every bad frame in the dead-letter topic with its reason, no worker exit);
publish-path faults (output topics refusing records or deleted, the broker away longer than the
delivery timeout: the worker stays up, stops committing, alerts, resumes with nothing lost); a
rebalance storm (joins, leaves, SIGKILLs every few seconds for minutes, committed offsets sampled
against the outcomes' publication times; rebalance_storm.py), at-least-once and exactly-once;
the evidence store SIGKILLed for a minute mid-stream (evidence_outage.py); with --soak, 20 minutes
at 70% load with the worker's RSS curve. Each ends with: produced =
judged + dead-lettered, zero lost, duplicates counted (0 in exactly-once).

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

from line_harness.chaos import evidence_outage, publish_faults, rebalance_storm, scenarios
from line_harness.kafka.session import broker_session
from line_harness.paths import REPO
from line_harness.processes import exit_on_signals

ALL = ("kill", "kill-eos", "restart", "rebalance", "corrupt", "publish", "storm", "storm-eos", "evidence")


def build_model(out_dir: Path, size: int = 64) -> Path:
    """The tiny model at size x size in out_dir/models (built once)."""
    from line_runtime.model import latest_version
    from training.tiny_model import build_tiny_model
    base = out_dir / "models"
    if latest_version(base) is None:
        build_tiny_model(base, version=1, input_size=(size, size))
    return base


def run_scenarios(ctx: "scenarios.Ctx", names: list[str], kills: int, corrupt_frames: int, soak_minutes: float = 0,
                  log=print, storm_minutes: float = 10.0, storm_eos_minutes: float | None = None,
                  outage_s: float = 20.0, broker_away_s: float = 130.0, evidence_outage_s: float = 60.0) -> list[dict]:
    """Run the named scenarios in order; every result dict has 'passed' and, mostly, 'check'."""
    eos_minutes = storm_minutes if storm_eos_minutes is None else storm_eos_minutes
    table = {
        "publish": lambda: publish_faults.publish_faults(ctx, outage_s=outage_s, broker_away_s=broker_away_s, log=log),
        "storm": lambda: rebalance_storm.storm(ctx, minutes=storm_minutes, log=log),
        "storm-eos": lambda: rebalance_storm.storm(ctx, minutes=eos_minutes, exactly_once=True, log=log),
        "kill": lambda: scenarios.sigkill(ctx, kills=kills),
        "kill-eos": lambda: scenarios.sigkill(ctx, kills=max(1, kills // 2), exactly_once=True),
        "restart": lambda: scenarios.broker_restart(ctx),
        "rebalance": lambda: scenarios.rebalance(ctx),
        "corrupt": lambda: scenarios.corrupt(ctx, frames=corrupt_frames),
        "soak": lambda: scenarios.soak(ctx, minutes=soak_minutes),
        "evidence": lambda: evidence_outage.evidence_outage(ctx, outage_s=evidence_outage_s, log=log),
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
            log(f"   throughput per worker CPU-second clean {c['frames_per_cpu_s']:.0f} vs good frames with bad ones "
                f"{b['good_frames_per_cpu_s']:.0f} = {result['throughput_ratio']:.2f} (wall clock {c['frames_per_s']:.0f} "
                f"vs {b['frames_per_s']:.0f} frames/s = {result['wall_clock_ratio']:.2f}); "
                f"dead letters {result['dead_by_reason']} (expected {result['expected_dead_by_reason']})")
        if name.startswith("storm"):
            log(rebalance_storm.storm_line(result))
        if name == "soak":
            log(f"   RSS growth after warm-up {result['rss_growth_after_warmup']}, curve {result['rss_mb_curve']}")
    return out


def _git_commit() -> str:
    """`git rev-parse --short HEAD` (with '+dirty' when worker/ has uncommitted changes), or '' outside git."""
    import subprocess
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "worker"], cwd=REPO, capture_output=True, text=True,
                               timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return head + ("+dirty(worker)" if dirty else "")


def main(argv=None) -> int:
    """CLI: run the suite, write results.json, exit 1 on any failure."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--short", action="store_true", help="CI size: 3 kills, storm 1.5 min, 10 s outages, no broker-away, no exactly-once kills or storm")
    p.add_argument("--only", default=None, help=f"comma-separated subset of {','.join(ALL)}")
    p.add_argument("--kills", type=int, default=10)
    p.add_argument("--corrupt-frames", type=int, default=3000)
    p.add_argument("--storm-minutes", type=float, default=10.0, help="length of the rebalance storm")
    p.add_argument("--storm-eos-minutes", type=float, default=None,
                   help="length of the exactly-once storm (default: --storm-minutes)")
    p.add_argument("--outage-s", type=float, default=20.0, help="length of each publish-path fault")
    p.add_argument("--broker-away-s", type=float, default=130.0,
                   help="publish: broker stopped this long (> the 120 s delivery timeout; 0: skip)")
    p.add_argument("--evidence-outage-s", type=float, default=60.0,
                   help="evidence: the object store SIGKILLed for this long mid-stream")
    p.add_argument("--soak", action="store_true", help="also run the soak (long)")
    p.add_argument("--soak-minutes", type=float, default=20.0)
    p.add_argument("--out", type=Path, default=REPO / "run" / "chaos")
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # for the children
    exit_on_signals()
    names = args.only.split(",") if args.only else list(ALL)
    if args.short:
        args.kills, args.corrupt_frames = min(args.kills, 3), min(args.corrupt_frames, 3000)
        args.storm_minutes, args.outage_s, args.broker_away_s = min(args.storm_minutes, 1.5), min(args.outage_s, 10), 0
        args.evidence_outage_s = min(args.evidence_outage_s, 15)
        names = [n for n in names if n not in ("kill-eos", "storm-eos")] if not args.only else names
    if args.soak:
        names.append("soak")
    args.out.mkdir(parents=True, exist_ok=True)
    model = build_model(args.out)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    commit = _git_commit()  # at the start: the tree may move on during a long run
    with broker_session(args.out / f"kafka-{os.getpid()}") as broker:
        ctx = scenarios.Ctx(broker.local, broker.kafka_env, broker.client_kwargs, model, args.out)
        results = run_scenarios(ctx, names, args.kills, args.corrupt_frames, args.soak_minutes,
                                log=lambda s: print(s, flush=True), storm_minutes=args.storm_minutes,
                                storm_eos_minutes=args.storm_eos_minutes, outage_s=args.outage_s,
                                broker_away_s=args.broker_away_s, evidence_outage_s=args.evidence_outage_s)
    doc = {"command": " ".join(sys.argv), "git_commit": commit, "started_utc": started,
           "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "load_average": os.getloadavg(),
           "scenarios": results}
    (args.out / "results.json").write_text(json.dumps(doc, indent=2, default=str))
    failed = [r["scenario"] for r in results if r.get("passed") is False]
    print(f"{len(results) - len(failed)} of {len(results)} scenarios passed" + (f"; FAILED: {failed}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
