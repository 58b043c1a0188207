"""The whole `train` command fits in 30 minutes on 2 CPU cores: the training loop gets what is left.

The loop has its own budget (`--max-minutes`, 20 min for whole frames), but everything around it
grows with the data: decoding and fitting the images before, scoring validation and held-out
frames and exporting after. A plant's set of a few thousand images spends minutes there. So once
the images are prepared, `train` measures what it spent, estimates what is still to come, and
shortens the loop when the sum would pass the command's budget. A `--max-minutes` the user gave
is kept as given.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

COMMAND_MINUTES = 30.0
MIN_LOOP_MINUTES = 2.0  # below this the loop could not finish one epoch of anything useful: keep it, and say so
EXPORT_FACTOR = 2.0  # the real export writes what the preflight wrote, plus the trained weights, map and metadata


@dataclass(frozen=True)
class LoopBudget:
    """The loop's minutes and why: what was spent and what is estimated to follow."""

    minutes: float
    planned: float
    spent_s: float
    after_s: float

    @property
    def shortened(self) -> bool:
        return self.minutes < self.planned

    def line(self) -> str:
        """The log line: only worth printing when the loop was shortened."""
        why = (f"{self.spent_s / 60:.1f} min spent preparing, about {self.after_s / 60:.1f} min to score and export after it, "
               f"in a {COMMAND_MINUTES:g}-minute command")
        if self.minutes <= MIN_LOOP_MINUTES:
            return (f"budget: WARNING: only {self.minutes:g} min of training ({why}); the command will run past "
                    f"{COMMAND_MINUTES:g} min. A smaller --model-size or fewer images would fit")
        return f"budget: {self.minutes:.1f} min of training instead of {self.planned:g} ({why}; --max-minutes keeps a budget as given)"


def scoring_seconds_per_frame(scorer: Any, model_size: tuple[int, int], channels: int, batch: int = 8) -> float:
    """Seconds one frame takes through `scorer` at the working size, as validation and held-out scoring run it."""
    from training.train import predict_scores

    frames = np.full((batch, *model_size, channels), 128, np.uint8)
    predict_scores(scorer, frames, batch)  # the first call traces the graph
    started = time.monotonic()
    predict_scores(scorer, frames, batch)
    return (time.monotonic() - started) / batch


def loop_budget(planned_minutes: float, spent_s: float, frames_to_score: int, seconds_per_frame: float, export_s: float,
                other_s: float = 0.0) -> LoopBudget:
    """The loop's minutes: the planned ones, or fewer when the command would otherwise pass COMMAND_MINUTES.

    `other_s` is anything else after the loop that has its own budget (the fast variant's training)."""
    after = frames_to_score * seconds_per_frame + EXPORT_FACTOR * export_s + other_s
    left = (COMMAND_MINUTES * 60.0 - spent_s - after) / 60.0
    minutes = min(planned_minutes, max(MIN_LOOP_MINUTES, round(left, 1)))
    return LoopBudget(minutes=minutes, planned=planned_minutes, spent_s=spent_s, after_s=after)
