"""`python -m producer_sim run` as a child of the benchmark and the fault suite: its command line, its
environment, a run to completion (JSON summary) or in the background."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Mapping, Optional

from line_harness.paths import REPO
from line_harness.processes import die_with_parent


def sim_env(kafka_env: Mapping[str, str], env: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """Environment for `python -m producer_sim` pointing at the broker (its KAFKA_* settings as SIM_KAFKA_*).

    env: the environment to start from (default: this process's, less its SIM_* variables); SIM_* variables
    in it are the user's choices and stay, except SIM_KAFKA_*, which always come from `kafka_env`.
    """
    base = {k: v for k, v in os.environ.items() if not k.startswith("SIM_")} if env is None else dict(env)
    out = {k: v for k, v in base.items() if not k.startswith("SIM_KAFKA_")}
    out.update({f"SIM_{k}": v for k, v in kafka_env.items() if k.startswith("KAFKA_")})
    out.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    out["PYTHONUNBUFFERED"] = "1"
    return out


def sim_run_args(topic: str, *, frames: Optional[int] = None, duration_s: Optional[float] = None,
                 fps: Optional[float] = None, cameras: int = 6, frame_size: str = "512x512", seed: int = 0,
                 corrupt_rate: float = 0.0, pool_size: int = 200, extra: tuple[str, ...] = ()) -> list[str]:
    """Command line of `producer_sim run` (max rate when fps is None)."""
    cmd = [sys.executable, "-m", "producer_sim", "run", "--topic", topic, "--lines", "1", "--cameras-per-line",
           str(cameras), "--frame-size", frame_size, "--seed", str(seed), "--pool-size", str(pool_size), "--quiet",
           "--json", "--defect-rate", "0.1"]
    cmd += ["--max-rate"] if fps is None else ["--fps", str(fps)]
    if frames is not None:
        cmd += ["--frames", str(frames)]
    if duration_s is not None:
        cmd += ["--duration", str(duration_s)]
    if corrupt_rate:
        cmd += ["--corrupt-rate", str(corrupt_rate)]
    return cmd + list(extra)


def run_sim(kafka_env: Mapping[str, str], args: list[str], timeout_s: float = 600.0) -> dict:
    """Run `producer_sim run` to completion and return its JSON summary (raises on failure)."""
    done = subprocess.run(args, cwd=REPO, env=sim_env(kafka_env), capture_output=True, text=True, timeout=timeout_s)
    if done.returncode not in (0, 1) or not done.stdout.strip():
        raise RuntimeError(f"producer_sim failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)


def start_sim(kafka_env: Mapping[str, str], args: list[str], summary_path: Path) -> subprocess.Popen:
    """Start `producer_sim run` in the background (dies with this process); stdout, its JSON summary, goes to
    summary_path."""
    with open(summary_path, "w") as out:
        return subprocess.Popen(args, cwd=REPO, env=sim_env(kafka_env), stdout=out, stderr=subprocess.DEVNULL,
                                preexec_fn=die_with_parent)
