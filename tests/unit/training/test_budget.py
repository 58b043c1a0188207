"""The training loop's share of the 30-minute `train` command."""

from __future__ import annotations

import numpy as np
import pytest

from training.budget import COMMAND_MINUTES, MIN_LOOP_MINUTES, loop_budget, scoring_seconds_per_frame


def test_a_small_set_keeps_the_planned_loop():
    budget = loop_budget(20.0, spent_s=60, frames_to_score=240, seconds_per_frame=0.1, export_s=20)
    assert budget.minutes == 20.0 and not budget.shortened


def test_a_big_set_shortens_the_loop_so_the_command_fits():
    # 5000 images: 6 min to prepare, 2000 frames to score at 0.1 s, a 30 s export twice over
    budget = loop_budget(20.0, spent_s=360, frames_to_score=2000, seconds_per_frame=0.1, export_s=30)
    assert budget.shortened and budget.minutes == pytest.approx(COMMAND_MINUTES - 6 - 200 / 60 - 1, abs=0.06)
    assert 360 + 60 * budget.minutes + budget.after_s <= 60 * COMMAND_MINUTES + 3  # rounded to 0.1 min
    line = budget.line()
    assert line.startswith("budget: 19.7 min of training instead of 20") and "6.0 min spent preparing" in line
    # the fast variant's own training counts as time after the loop
    with_fast = loop_budget(20.0, spent_s=360, frames_to_score=2000, seconds_per_frame=0.1, export_s=30, other_s=360)
    assert with_fast.minutes == pytest.approx(budget.minutes - 6, abs=0.06)


def test_a_set_too_big_for_the_command_keeps_a_minimal_loop_and_warns():
    budget = loop_budget(20.0, spent_s=1500, frames_to_score=4000, seconds_per_frame=0.2, export_s=30)
    assert budget.minutes == MIN_LOOP_MINUTES
    assert "WARNING" in budget.line() and "run past 30 min" in budget.line() and "--model-size" in budget.line()


def test_scoring_time_is_measured_on_the_model():
    import tf_keras as keras

    scorer = keras.Sequential([keras.Input((32, 48, 1)), keras.layers.Conv2D(4, 3), keras.layers.GlobalMaxPooling2D(),
                               keras.layers.Dense(1, activation="sigmoid")])
    seconds = scoring_seconds_per_frame(scorer, (32, 48), 1)
    assert 0 < seconds < 1.0 and np.isfinite(seconds)
