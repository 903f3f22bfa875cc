"""Edge-aware smoothing of a decoder's feature map by the image: the guided filter (He et al. 2010).

In every window, the filter fits each feature channel as a linear function of the image's colour
and averages the fits: features stay apart where the colour changes and are smoothed where it
does not, which is what an object's features should do. It has no parameters, so it can be
switched on for a trained decoder (README, "Edge-aware smoothing"). It runs in float32 at least:
the 3x3 colour covariances it inverts are far below bf16's resolution.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

#: An orthonormal opponent-colour basis (luminance, red-green, yellow-blue) as a 1x1 convolution.
OPPONENT_COLOURS = torch.tensor([
    [1 / math.sqrt(3), 1 / math.sqrt(3), 1 / math.sqrt(3)],
    [1 / math.sqrt(2), -1 / math.sqrt(2), 0.0],
    [1 / math.sqrt(6), 1 / math.sqrt(6), -2 / math.sqrt(6)],
]).view(3, 3, 1, 1)


def box_mean(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over the (2 radius + 1)^2 window around every pixel, shrunk at the borders.

    One depthwise convolution on a channels-last copy: on a CPU an order of magnitude faster
    than ``avg_pool2d`` or a channels-first convolution, and exported to ONNX as a plain one."""
    side = 2 * radius + 1
    window = x.new_ones(x.shape[1], 1, side, side)
    summed = F.conv2d(x.contiguous(memory_format=torch.channels_last), window, padding=radius,
                      groups=x.shape[1])
    count = F.conv2d(x.new_ones(1, 1, *x.shape[-2:]), window[:1], padding=radius)
    return summed * count.reciprocal()


def _solve_symmetric_3x3(
    matrix: dict[tuple[int, int], torch.Tensor], rhs: list[torch.Tensor]
) -> list[torch.Tensor]:
    """Per-pixel solution x of ``matrix @ x = rhs`` by cofactors (no batched LAPACK call, so the
    filter exports to ONNX); ``matrix[i, j]`` (i <= j) are B x 1 x h x w, ``rhs`` B x C x h x w."""
    s00, s01, s02 = matrix[0, 0], matrix[0, 1], matrix[0, 2]
    s11, s12, s22 = matrix[1, 1], matrix[1, 2], matrix[2, 2]
    c00, c01, c02 = s11 * s22 - s12 * s12, s02 * s12 - s01 * s22, s01 * s12 - s02 * s11
    c11, c12, c22 = s00 * s22 - s02 * s02, s01 * s02 - s00 * s12, s00 * s11 - s01 * s01
    inverse_det = 1.0 / (s00 * c00 + s01 * c01 + s02 * c02)
    inverse = [[c * inverse_det for c in row] for row in ((c00, c01, c02), (c01, c11, c12), (c02, c12, c22))]
    return [torch.addcmul(torch.addcmul(row[0] * rhs[0], row[1], rhs[1]), row[2], rhs[2]) for row in inverse]


class GuidedFilter(nn.Module):
    """Filters a B x C x h x w map guided by a B x 3 x h x w RGB image in [0, 1] of the same size
    (h, w even). The fast guided filter (He & Sun 2015): the linear fits are made on both
    downsampled 2x, in windows of ``radius`` pixels of that grid, and their coefficients upsampled
    back, a quarter of the work for the same result on our yardstick (README). ``eps``: the
    regulariser, in squared colour units (colour edges much weaker than sqrt(eps) are smoothed
    over)."""

    def __init__(self, radius: int, eps: float) -> None:
        super().__init__()
        self.radius = radius
        self.eps = eps

    def forward(self, values: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        # channels-last throughout: a CPU runs these depthwise and pointwise maps far faster so
        dtype = torch.promote_types(values.dtype, torch.float32)
        layout = (torch.channels_last if values.is_contiguous(memory_format=torch.channels_last)
                  else torch.contiguous_format)
        with torch.autocast(values.device.type, enabled=False):
            filtered = self._filter(values.to(dtype).contiguous(memory_format=torch.channels_last),
                                    guide.to(dtype).contiguous(memory_format=torch.channels_last))
        # the layout the rest of the decoder runs in (channel slices above can lose it)
        return filtered.contiguous(memory_format=layout)

    def _filter(self, values: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        # Float32 loses digits to cancellation in two places, so the inputs are first changed in
        # ways the filter's output does not see. Covariances are differences of window means:
        # centring both inputs keeps those means small (the filter commutes with shifts, so the
        # values' mean is added back to the offsets). In greyish windows R, G and B move
        # together, and the 3x3 cofactors of their covariance are differences of nearly equal
        # products: in opponent colours (an orthonormal basis, under which a filter with
        # eps * identity is unchanged) the covariance is near diagonal instead.
        channels = values.shape[1]
        guide = F.conv2d(guide - guide.mean(dim=(2, 3), keepdim=True), OPPONENT_COLOURS.to(guide))
        small_guide, small_values = F.avg_pool2d(guide, 2), F.avg_pool2d(values, 2)
        value_offset = small_values.mean(dim=(2, 3), keepdim=True)
        small_values = small_values - value_offset
        colours = [small_guide[:, i : i + 1] for i in range(3)]
        pairs = [(i, j) for i in range(3) for j in range(i, 3)]
        # one box filter over every map that needs one: colours, values, colour x values, colour pairs
        means = box_mean(torch.cat([small_guide, small_values, *(c * small_values for c in colours),
                                    *(colours[i] * colours[j] for i, j in pairs)], dim=1), self.radius)
        colour_means = [means[:, i : i + 1] for i in range(3)]
        value_mean = means[:, 3 : 3 + channels]
        covariances = [
            torch.addcmul(means[:, 3 + (i + 1) * channels : 3 + (i + 2) * channels], colour_means[i],
                          value_mean, value=-1.0)
            for i in range(3)
        ]
        pair_means = means[:, 3 + 4 * channels :]
        variances = {
            (i, j): pair_means[:, k : k + 1] - colour_means[i] * colour_means[j]
            + (self.eps if i == j else 0.0)
            for k, (i, j) in enumerate(pairs)
        }
        slopes = _solve_symmetric_3x3(variances, covariances)
        offset = value_mean + value_offset
        for slope, colour_mean in zip(slopes, colour_means, strict=True):
            offset = torch.addcmul(offset, slope, colour_mean, value=-1.0)
        coefficients = F.interpolate(box_mean(torch.cat([*slopes, offset], dim=1), self.radius),
                                     size=values.shape[-2:], mode="bilinear", align_corners=False)
        filtered = coefficients[:, 3 * channels :]
        for i in range(3):
            filtered = torch.addcmul(filtered, coefficients[:, i * channels : (i + 1) * channels],
                                     guide[:, i : i + 1])
        return filtered
