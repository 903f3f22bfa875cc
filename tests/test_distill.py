"""Motion-profile distillation math against the authors' recorded step (official_distill_step)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from flowfeat_core.training.distillation import (
    apply_motion_profile,
    boundary_loss,
    distillation_losses,
    flow_l1_loss,
    solve_motion_profile,
)

REL_TOL = 1e-4


@pytest.fixture(scope="module")
def step(reference_dir: Path) -> dict[str, torch.Tensor]:
    """Inputs and outputs of one reference distillation step."""
    path = reference_dir / "official_distill_step.safetensors"
    if not path.is_file():
        pytest.fail(f"reference fixture missing: {path}")
    return load_file(str(path))


def _relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """Max abs difference divided by the max abs reference value."""
    actual = actual.detach().reshape(expected.shape).double()
    expected = expected.double()
    return ((actual - expected).abs().max() / expected.abs().max()).item()


def _run(step: dict[str, torch.Tensor], **kwargs: float):
    return distillation_losses(
        step["features_teacher"],
        step["features_student"],
        step["teacher_flow_view1"],
        step["teacher_flow_view2"],
        **kwargs,
    )


def test_reproduces_reference_step(step: dict[str, torch.Tensor]) -> None:
    result = _run(step)
    assert result.ridge_solution.shape == (2, 17, 2)
    assert result.predicted_flow.shape == (2, 2, 24, 32)
    assert result.total.dim() == 0
    pairs = {
        "ridge_solution": result.ridge_solution,
        "predicted_flow_view2": result.predicted_flow,
        "loss_flow_l1": result.flow_l1,
        "loss_boundary": result.boundary,
        "loss_total": result.total,
    }
    for name, actual in pairs.items():
        assert _relative_error(actual, step[name]) < REL_TOL, name


def test_building_blocks_compose_to_reference(step: dict[str, torch.Tensor]) -> None:
    solution = solve_motion_profile(step["features_teacher"], step["teacher_flow_view1"])
    predicted = apply_motion_profile(step["features_student"], solution)
    target = step["teacher_flow_view2"]
    assert _relative_error(flow_l1_loss(predicted, target), step["loss_flow_l1"]) < REL_TOL
    assert _relative_error(boundary_loss(predicted, target), step["loss_boundary"]) < REL_TOL


@pytest.mark.parametrize(
    ("setting", "output"),
    [
        ({"alpha": 0.2}, "ridge_solution"),
        ({"sigma": 0.2}, "loss_boundary"),
        ({"flow_weight": 0.2}, "loss_total"),
        ({"boundary_weight": 0.9}, "loss_total"),
    ],
)
def test_changed_setting_is_detected(
    step: dict[str, torch.Tensor], setting: dict[str, float], output: str
) -> None:
    result = _run(step, **setting)
    actual = {
        "ridge_solution": result.ridge_solution,
        "loss_boundary": result.boundary,
        "loss_total": result.total,
    }[output]
    assert _relative_error(actual, step[output]) > 10 * REL_TOL


def test_bias_column_position_matters(step: dict[str, torch.Tensor]) -> None:
    """Putting the bias first (a plausible slip) must not match the reference layout."""
    solution = solve_motion_profile(step["features_teacher"], step["teacher_flow_view1"])
    bias_first = torch.cat([solution[:, -1:], solution[:, :-1]], dim=1)
    assert _relative_error(bias_first, step["ridge_solution"]) > 10 * REL_TOL


def test_ridge_recovers_exact_linear_map() -> None:
    """Flow that is exactly linear in the features is predicted almost exactly for tiny alpha."""
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(3, 5, 12, 10, generator=generator)
    weights = torch.randn(3, 6, 2, generator=generator)
    flow = apply_motion_profile(features, weights)
    solution = solve_motion_profile(features, flow, alpha=1e-6)
    torch.testing.assert_close(solution, weights, rtol=1e-3, atol=1e-3)


def test_gradient_reaches_student_only(step: dict[str, torch.Tensor]) -> None:
    teacher = step["features_teacher"].clone().requires_grad_(True)
    student = step["features_student"].clone().requires_grad_(True)
    result = distillation_losses(teacher, student, step["teacher_flow_view1"], step["teacher_flow_view2"])
    result.total.backward()
    assert student.grad is not None
    assert torch.isfinite(student.grad).all()
    assert student.grad.abs().sum() > 0
    assert teacher.grad is None


def test_runs_in_float32_under_autocast(step: dict[str, torch.Tensor]) -> None:
    teacher = step["features_teacher"].bfloat16()
    student = step["features_student"].bfloat16()
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        result = distillation_losses(teacher, student, step["teacher_flow_view1"], step["teacher_flow_view2"])
    assert result.ridge_solution.dtype == torch.float32
    assert result.total.dtype == torch.float32
    # Only the bf16 rounding of the inputs separates this from the reference.
    assert _relative_error(result.total, step["loss_total"]) < 2e-2


def test_rejects_mismatched_shapes(step: dict[str, torch.Tensor]) -> None:
    with pytest.raises(ValueError, match="differ in batch or size"):
        solve_motion_profile(step["features_teacher"], step["teacher_flow_view1"][..., :-1])
    with pytest.raises(ValueError, match="2 channels"):
        solve_motion_profile(step["features_teacher"], step["features_teacher"])
    with pytest.raises(ValueError, match="solution must be"):
        apply_motion_profile(step["features_student"], torch.zeros(2, 16, 2))
