"""When each camera's n-th frame is due: a fixed schedule computed from the start, never from sleeps.

Every due time is `start + shape.due(n) + phase`, so a late send does not push later frames back
(no drift); the caller measures how far behind the schedule it is instead of silently slowing.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from typing import Optional, Protocol


class LoadShape(Protocol):
    """Frames-over-time curve of one camera."""

    def due(self, n: int) -> float:
        """Seconds after start at which frame n (0-based) is due."""

    def rate(self, t: float) -> float:
        """Instantaneous rate (frames/s) at t seconds after start."""


@dataclass(frozen=True)
class Steady:
    """Constant rate."""

    fps: float

    def due(self, n: int) -> float:
        """Frame n is due at n / fps."""
        return n / self.fps

    def rate(self, t: float) -> float:
        """Always fps."""
        return self.fps


@dataclass(frozen=True)
class Ramp:
    """Rate rises linearly from start_fps to fps over ramp_s seconds, then stays at fps."""

    start_fps: float
    fps: float
    ramp_s: float

    def due(self, n: int) -> float:
        """Invert the cumulative count r0*t + (r1-r0)*t^2/(2R) during the ramp, linear after it."""
        r0, r1, big_r = self.start_fps, self.fps, self.ramp_s
        in_ramp = (r0 + r1) * big_r / 2.0
        if n >= in_ramp:
            return big_r + (n - in_ramp) / r1
        a = (r1 - r0) / (2.0 * big_r)
        if a <= 1e-12:
            return n / r0
        return (-r0 + math.sqrt(r0 * r0 + 4.0 * a * n)) / (2.0 * a)

    def rate(self, t: float) -> float:
        """Linear during the ramp, fps after it."""
        if t >= self.ramp_s:
            return self.fps
        return self.start_fps + (self.fps - self.start_fps) * t / self.ramp_s


@dataclass(frozen=True)
class Burst:
    """Every `every_s` seconds: (every_s - burst_s) at fps, then burst_s at fps * factor."""

    fps: float
    every_s: float
    burst_s: float
    factor: float

    def due(self, n: int) -> float:
        """Whole periods first, then the position inside the current one."""
        base_s = self.every_s - self.burst_s
        base_n = self.fps * base_s
        per_period = base_n + self.fps * self.factor * self.burst_s
        periods = math.floor(n / per_period)
        rest = n - periods * per_period
        if rest < base_n:
            inside = rest / self.fps
        else:
            inside = base_s + (rest - base_n) / (self.fps * self.factor)
        return periods * self.every_s + inside

    def rate(self, t: float) -> float:
        """fps, or fps * factor inside a burst."""
        inside = t % self.every_s
        return self.fps * self.factor if inside >= self.every_s - self.burst_s else self.fps


def make_shape(name: str, fps: float, ramp_s: float = 30.0, ramp_start_fraction: float = 0.1,
               burst_every_s: float = 10.0, burst_s: float = 2.0, burst_factor: float = 3.0) -> LoadShape:
    """Build the named load shape (steady, ramp or burst)."""
    if name == "steady":
        return Steady(fps)
    if name == "ramp":
        return Ramp(fps * ramp_start_fraction, fps, ramp_s)
    if name == "burst":
        return Burst(fps, burst_every_s, burst_s, burst_factor)
    raise ValueError(f"unknown load shape {name!r}: use steady, ramp or burst")


class Schedule:
    """Merged schedule of all cameras: which camera's frame is due next, and when.

    Cameras are phase-shifted by a fraction of one nominal frame interval so that N cameras
    at f fps send one frame every 1/(N*f) s instead of N frames at once.
    """

    def __init__(self, shape: LoadShape, cameras: int, nominal_fps: float,
                 duration_s: Optional[float] = None, total_frames: Optional[int] = None):
        self._shape = shape
        self._duration_s = duration_s
        self._remaining = total_frames
        self._phase = [i / (cameras * nominal_fps) for i in range(cameras)]
        self._next_n = [0] * cameras
        self._heap = [(self._phase[i] + shape.due(0), i) for i in range(cameras)]
        heapq.heapify(self._heap)
        self.expected_frames = self._count_expected(cameras, total_frames)

    def next(self) -> Optional[tuple[int, int, float]]:
        """(camera index, its frame number, due seconds after start) of the next frame; None when done."""
        if not self._heap or self._remaining == 0:
            return None
        due, cam = self._heap[0]
        if self._duration_s is not None and due >= self._duration_s:
            return None
        n = self._next_n[cam]
        self._next_n[cam] = n + 1
        heapq.heapreplace(self._heap, (self._phase[cam] + self._shape.due(n + 1), cam))
        if self._remaining is not None:
            self._remaining -= 1
        return cam, n, due

    def _count_expected(self, cameras: int, total_frames: Optional[int]) -> Optional[int]:
        """How many frames the whole schedule holds (None when unbounded)."""
        if self._duration_s is None:
            return total_frames
        count = 0
        for cam in range(cameras):
            # frames n with phase + due(n) < duration; due is increasing, so count by bisection.
            lo, hi = 0, 1
            while self._phase[cam] + self._shape.due(hi) < self._duration_s:
                hi *= 2
            while lo < hi:
                mid = (lo + hi) // 2
                if self._phase[cam] + self._shape.due(mid) < self._duration_s:
                    lo = mid + 1
                else:
                    hi = mid
            count += lo
        return count if total_frames is None else min(count, total_frames)
