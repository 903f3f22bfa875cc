"""Motion-profile distillation: ridge regression from features to teacher flow, and the losses.

One distillation step (FlowFeat): the EMA decoder's features of crop 1 and the teacher flow of
crop 1 define, per sample, a linear map ("motion profile") from features (plus a bias) to flow.
Applying that map to the trained decoder's features of crop 2 predicts the flow of crop 2, which is
compared with the teacher flow of crop 2 by an L1 loss and an edge-weighted flow-gradient
("boundary") loss.

Gradient policy: the motion profile is a target-side quantity. ``distillation_losses`` detaches the
teacher features (they come from the EMA copy, which is never trained by gradient), so the gradient
reaches only the student features, never flows back through the ridge solve.

All of this math runs in float32 with autocast disabled, because the Gram solve and the loss
reductions need more precision than bf16/fp16 give.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


def _float32_no_autocast(device: torch.device) -> torch.autocast:
    """Context disabling autocast on ``device``, so the enclosed math keeps its dtypes."""
    return torch.autocast(device_type=device.type, enabled=False)


def _design_matrix(features: Tensor) -> Tensor:
    """B x C x H x W features -> B x (H*W) x (C+1) float32 rows; the last column is ones (bias)."""
    batch, _, height, width = features.shape
    rows = features.float().flatten(2).transpose(1, 2)
    ones = rows.new_ones(batch, height * width, 1)
    return torch.cat([rows, ones], dim=2)


def _check_dense(name: str, tensor: Tensor, channels: int | None = None) -> None:
    """Raise a clear error unless ``tensor`` is B x C x H x W (with C == ``channels`` if given)."""
    if tensor.dim() != 4:
        raise ValueError(f"{name} must be B x C x H x W, got shape {tuple(tensor.shape)}")
    if channels is not None and tensor.shape[1] != channels:
        raise ValueError(f"{name} must have {channels} channels, got shape {tuple(tensor.shape)}")


def solve_motion_profile(features: Tensor, flow: Tensor, alpha: float = 0.1) -> Tensor:
    """Per-sample ridge regression from features (+ bias) to flow.

    Solves ``(X^T X / N + alpha I) S = X^T Y / N`` with X = [features, 1] (N = H*W pixels) and
    Y = flow, the ridge term covering the bias too. Returns S as float32, B x (C+1) x 2.
    """
    _check_dense("features", features)
    _check_dense("flow", flow, channels=2)
    if features.shape[0] != flow.shape[0] or features.shape[2:] != flow.shape[2:]:
        raise ValueError(
            f"features {tuple(features.shape)} and flow {tuple(flow.shape)} differ in batch or size"
        )
    with _float32_no_autocast(features.device):
        design = _design_matrix(features)
        targets = flow.float().flatten(2).transpose(1, 2)
        pixel_count = design.shape[1]
        gram = design.transpose(1, 2) @ design / pixel_count
        gram = gram + alpha * torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
        rhs = design.transpose(1, 2) @ targets / pixel_count
        cholesky = torch.linalg.cholesky(gram)
        return torch.cholesky_solve(rhs, cholesky)


def apply_motion_profile(features: Tensor, solution: Tensor) -> Tensor:
    """Predict float32 flow B x 2 x H x W from features and a B x (C+1) x 2 solution."""
    _check_dense("features", features)
    batch, channels, height, width = features.shape
    if solution.shape != (batch, channels + 1, 2):
        raise ValueError(
            f"solution must be {(batch, channels + 1, 2)} for features {tuple(features.shape)}, "
            f"got {tuple(solution.shape)}"
        )
    with _float32_no_autocast(features.device):
        predicted = _design_matrix(features) @ solution.float()
        return predicted.transpose(1, 2).reshape(batch, 2, height, width)


def flow_l1_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Per-pixel L1 summed over the two flow channels, averaged over batch and pixels."""
    return (pred.float() - target.float()).abs().sum(dim=1).mean()


def _directional_boundary_loss(pred: Tensor, target: Tensor, dim: int, sigma: float) -> Tensor:
    """Edge-weighted L1 of absolute flow differences along ``dim`` (3: horizontal, 2: vertical)."""
    target_grad = target.diff(dim=dim).abs()
    pred_grad = pred.diff(dim=dim).abs()
    weights = 1.0 - torch.exp(-target_grad / sigma)
    weights = weights / weights.sum(dim=(2, 3), keepdim=True).clamp_min(1e-12)
    return (weights * (pred_grad - target_grad).abs()).sum(dim=(2, 3)).mean()


def boundary_loss(pred: Tensor, target: Tensor, sigma: float = 0.1) -> Tensor:
    """Flow-gradient loss concentrated on the teacher's motion boundaries.

    For horizontal and vertical absolute differences g of each flow channel, the weights
    w = 1 - exp(-g_target / sigma) are normalised to sum to 1 per image and channel; the weighted L1
    between predicted and teacher differences is summed over pixels, averaged over batch and
    channels, and the x and y terms are added.
    """
    pred, target = pred.float(), target.float()
    return _directional_boundary_loss(pred, target, 3, sigma) + _directional_boundary_loss(
        pred, target, 2, sigma
    )


@dataclass(frozen=True)
class DistillationLosses:
    """Everything one distillation step produces; ``total`` is the scalar to back-propagate
    (``rank``, ``keep``: the anti-collapse and encoder-keeping terms the trainer may add, see
    ``rank_regularizer`` and ``encoder_keeping``)."""

    ridge_solution: Tensor
    predicted_flow: Tensor
    flow_l1: Tensor
    boundary: Tensor
    total: Tensor
    rank: Tensor | None = None
    keep: Tensor | None = None


def distillation_losses(
    features_teacher: Tensor,
    features_student: Tensor,
    flow_view1: Tensor,
    flow_view2: Tensor,
    alpha: float = 0.1,
    flow_weight: float = 0.1,
    boundary_weight: float = 1.0,
    sigma: float = 0.1,
) -> DistillationLosses:
    """Fit the motion profile on view 1 (teacher features), predict view 2 from student features.

    The teacher features are detached: gradient flows only into ``features_student``.
    """
    _check_dense("flow_view2", flow_view2, channels=2)
    if features_student.shape[0] != flow_view2.shape[0] or (
        features_student.shape[2:] != flow_view2.shape[2:]
    ):
        raise ValueError(
            f"features_student {tuple(features_student.shape)} and flow_view2 "
            f"{tuple(flow_view2.shape)} differ in batch or size"
        )
    solution = solve_motion_profile(features_teacher.detach(), flow_view1.detach(), alpha)
    predicted = apply_motion_profile(features_student, solution)
    target = flow_view2.detach().float()
    with _float32_no_autocast(predicted.device):
        flow_l1 = flow_l1_loss(predicted, target)
        boundary = boundary_loss(predicted, target, sigma)
        total = flow_weight * flow_l1 + boundary_weight * boundary
    return DistillationLosses(solution, predicted, flow_l1, boundary, total)
