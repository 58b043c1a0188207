"""Pacing benchmark: does `producer_sim run` hold its schedule against a real broker?

    python -m producer_sim.bench_pacing --bootstrap-servers HOST:PORT [--cameras 6 --fps 30 --duration 60]

Runs `python -m producer_sim run --json` as a separate process (the way users run it) and checks
the issue's bar: total frames within +-0.5% of cameras*fps*duration, and the rate in every full
5-second window, by send time and by acknowledgement time, within 5% of the target. Exit 0 = pass.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from typing import Optional, Sequence


def window_rates(per_second: list[int], window_s: int, full_seconds: int) -> list[float]:
    """Rate (frames/s) of each complete window of `window_s` seconds inside the first `full_seconds`."""
    counts = list(per_second) + [0] * max(0, full_seconds - len(per_second))
    return [sum(counts[i:i + window_s]) / window_s for i in range(0, full_seconds - window_s + 1, window_s)]


def check(summary: dict, cameras: int, fps: float, duration_s: float, window_s: int = 5,
          total_tolerance: float = 0.005, window_tolerance: float = 0.05) -> list[str]:
    """Failures of the pacing bar in a run summary; empty = pass."""
    problems = []
    target_total = cameras * fps * duration_s
    for name in ("attempted", "acked"):
        if abs(summary[name] - target_total) > total_tolerance * target_total:
            problems.append(f"{name} {summary[name]} frames, want {target_total:.0f} +-{total_tolerance:.1%}")
    if summary["lost"]:
        problems.append(f"{summary['lost']} frames lost")
    target_rate = cameras * fps
    for series in ("sent_per_second", "acked_per_second"):
        for i, rate in enumerate(window_rates(summary[series], window_s, int(duration_s))):
            if abs(rate - target_rate) > window_tolerance * target_rate:
                problems.append(f"{series} window {i * window_s}-{(i + 1) * window_s}s: {rate:.1f}/s, "
                                f"want {target_rate:.1f} +-{window_tolerance:.0%}")
    return problems


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the simulator once and judge its pacing."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bootstrap-servers", required=True)
    p.add_argument("--topic", default="bench.pacing")
    p.add_argument("--cameras", type=int, default=6)
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--duration", type=float, default=60.0)
    p.add_argument("--encoding", default="png")
    p.add_argument("--output", help="also write the run summary JSON here")
    args = p.parse_args(argv)
    cmd = [sys.executable, "-m", "producer_sim", "run", "--bootstrap-servers", args.bootstrap_servers,
           "--topic", args.topic, "--cameras-per-line", str(args.cameras), "--fps", str(args.fps),
           "--duration", str(args.duration), "--encoding", args.encoding, "--json", "--status-interval", "5"]
    print("running:", " ".join(cmd[1:]), file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, timeout=args.duration + 300)
    if proc.returncode not in (0, 1) or not proc.stdout.strip():
        print(f"simulator failed with exit code {proc.returncode}", file=sys.stderr)
        return 2
    summary = json.loads(proc.stdout)
    if args.output:
        with open(args.output, "w") as fh:
            json.dump(summary, fh, indent=2)
    sent = window_rates(summary["sent_per_second"], 5, int(args.duration))
    acked = window_rates(summary["acked_per_second"], 5, int(args.duration))
    print(f"frames: attempted {summary['attempted']} acked {summary['acked']} lost {summary['lost']} "
          f"(target {args.cameras * args.fps * args.duration:.0f}); mean frame {summary['mean_frame_bytes'] / 1024:.0f} KiB")
    print(f"5 s windows, sent/s:  min {min(sent):.1f} max {max(sent):.1f}")
    print(f"5 s windows, acked/s: min {min(acked):.1f} max {max(acked):.1f}")
    print(f"behind schedule: max {summary['behind_schedule_max_ms']:.1f} ms, "
          f"mean {summary['behind_schedule_mean_ms']:.2f} ms")
    problems = check(summary, args.cameras, args.fps, args.duration)
    for problem in problems:
        print("FAIL:", problem)
    print("PASS" if not problems else "FAIL")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
