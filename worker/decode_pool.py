"""Decoding off the consumer thread: a small thread pool (OpenCV releases the GIL), with the limits
of the model in service.

cv2.imdecode cannot be interrupted. Structural limits (pixels, JPEG scans) bound what a decode can
cost; as a last line, a decode that overruns its time budget is given up on (the Batcher
dead-letters the frame) and `replace_stuck()` moves later decodes to fresh threads, so a stuck
thread never starves the pool.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Optional, Sequence, Tuple

from worker.decode import DecodedFrame, DecodeLimits, Rejected, decode_frame
from worker.settings import WorkerSettings


class DecodePool:
    """Submits frames for decoding against the current model's input size."""

    def __init__(self, settings: WorkerSettings, input_size: Callable[[], tuple[int, int]]):
        self._s = settings
        self._input_size = input_size  # (height, width) of the model in service; changes on hot reload
        self._limits: dict[tuple[int, int], DecodeLimits] = {}
        self._pool = self._new_pool()
        self.replaced = 0

    def _new_pool(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=self._s.decode_threads, thread_name_prefix="decode")

    def limits(self) -> DecodeLimits:
        """The decode limits for the model now in service."""
        size = self._input_size()
        limits = self._limits.get(size)
        if limits is None:
            s = self._s
            limits = self._limits[size] = DecodeLimits(s.max_frame_bytes, s.max_frame_pixels, size[0], size[1],
                                                       s.size_mismatch_policy, s.max_jpeg_scans)
        return limits

    def submit(self, value: Optional[bytes], headers: Sequence[Tuple[str, bytes]],
               key: Optional[bytes] = None) -> "Future[DecodedFrame | Rejected]":
        """Start decoding one frame record; the future's result is a DecodedFrame or a Rejected."""
        return self._pool.submit(decode_frame, value, headers, self.limits(), key)

    def replace_stuck(self) -> None:
        """A decode overran its budget: send later decodes to fresh threads (the old ones finish their queue)."""
        old, self._pool = self._pool, self._new_pool()
        old.shutdown(wait=False)
        self.replaced += 1

    def shutdown(self) -> None:
        """Stop the threads; decodes not started are cancelled (their frames are redone after a restart)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
