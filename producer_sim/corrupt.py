"""Bad frames prepared before the run, so mixing them in never stalls the schedule.

Some kinds are slow to build (the huge PNG takes seconds the first time, 16-bit and colour PNGs
re-encode the image), so each kind is built a few times at start with placeholder identity
headers; at send time only the identity header values are swapped for the real frame's.
Whatever a kind did to the headers (removed one, garbled one, a hostile value) is kept, because
only headers still holding a placeholder are replaced. The hostile kinds of `faults.HOSTILE_KINDS`
(all but huge_key, which changes the record key) can be named in SIM_CORRUPT_KINDS.
"""

from __future__ import annotations

import numpy as np

from line_contracts.frame import H_CAMERA_ID, H_CAPTURE_TIME_NS, H_LINE_ID, H_SEQUENCE, Encoding, FrameHeaders
from producer_sim import faults

_PLACEHOLDER = FrameHeaders(camera_id="__camera__", line_id="__line__", frame_seq=987654321,
                            capture_time_ns=123456789012345678, encoding=Encoding.PNG, width=1, height=1)


class BadFramePool:
    """A few prebuilt variants of each bad-frame kind, stamped with a frame's identity on demand."""

    def __init__(self, kinds: tuple[str, ...], rng: np.random.Generator, good_png: bytes, width: int, height: int,
                 variants: int = 3):
        unknown = [k for k in kinds if k not in faults.FRAME_LEVEL_KINDS]
        if unknown:
            raise ValueError(f"SIM_CORRUPT_KINDS / --corrupt-kinds: unknown kind(s) {', '.join(unknown)}; "
                             f"choose from {', '.join(faults.FRAME_LEVEL_KINDS)} (the hostile ones only when "
                             "named: they are not in the default mix)")
        self.kinds = kinds
        self._rng = rng
        template = _PLACEHOLDER.model_copy(update=dict(width=width, height=height))
        self._variants = {kind: [faults.make_bad_frame(kind, rng, template, good_png) for _ in range(variants)]
                          for kind in kinds}

    def draw(self, headers: FrameHeaders) -> tuple[str, bytes, list[tuple[str, bytes]]]:
        """(kind, value, kafka headers) of a random bad frame carrying `headers`' identity."""
        kind = self.kinds[int(self._rng.integers(len(self.kinds)))]
        variants = self._variants[kind]
        value, template = variants[int(self._rng.integers(len(variants)))]
        real = {H_CAMERA_ID: headers.camera_id, H_LINE_ID: headers.line_id, H_SEQUENCE: str(headers.frame_seq),
                H_CAPTURE_TIME_NS: str(headers.capture_time_ns)}
        placeholder = {name: str(getattr(_PLACEHOLDER, name)).encode() for name in real}
        stamped = [(name, real[name].encode() if name in real and v == placeholder[name] else v)
                   for name, v in template]
        return kind, value, stamped
