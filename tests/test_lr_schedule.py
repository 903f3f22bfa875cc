"""Learning-rate schedules: the reference's constant rate, warm-up ramp, cosine decay."""

from __future__ import annotations

from itertools import pairwise

import pytest

from flowfeat_core.training.config import parse_args
from flowfeat_core.training.schedule import learning_rate


def test_constant_cosine_and_warmup() -> None:
    assert [learning_rate(1e-4, step, 100, "constant") for step in (0, 50, 99)] == [1e-4] * 3
    assert learning_rate(1.0, 0, 100, "constant", warmup_steps=4) == pytest.approx(0.25)
    assert learning_rate(1.0, 3, 100, "cosine", warmup_steps=4) == pytest.approx(1.0)
    assert learning_rate(1.0, 4, 100, "cosine", warmup_steps=4) == pytest.approx(1.0)
    assert learning_rate(1.0, 52, 100, "cosine", warmup_steps=4) == pytest.approx(0.5)
    assert learning_rate(1.0, 100, 100, "cosine", warmup_steps=4) == pytest.approx(0.0, abs=1e-12)
    cosine = [learning_rate(1.0, step, 100, "cosine") for step in range(100)]
    assert all(later < earlier for earlier, later in pairwise(cosine))
    with pytest.raises(ValueError, match="schedule"):
        learning_rate(1.0, 0, 10, "linear")


def test_command_line_checks_the_schedule(capsys: pytest.CaptureFixture[str]) -> None:
    config = parse_args(["--videos", "a.avi", "--lr-schedule", "cosine", "--warmup-steps", "5"])
    assert (config.lr_schedule, config.warmup_steps) == ("cosine", 5)
    assert parse_args(["--videos", "a.avi"]).lr_schedule == "constant"
    for bad in (["--warmup-steps", "10", "--steps", "10"], ["--lr-schedule", "step"]):
        with pytest.raises(SystemExit):
            parse_args(["--videos", "a.avi", *bad])
    assert "--" in capsys.readouterr().err
