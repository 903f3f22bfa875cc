"""DPT-style multi-scale fusion: residual conv units, fusion blocks, output head, channel LayerNorm.

Module and parameter names follow the DPT code that FlowFeat's released checkpoints were saved
from (``scratch.layer1_rn``, ``scratch.refinenet4.resConfUnit1.conv1``, ...).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from flowfeat_core.models.decoders.guided_filter import GuidedFilter


def conv3x3(in_channels: int, out_channels: int, bias: bool = True) -> nn.Conv2d:
    """A same-size 3x3 convolution."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=bias)


class ResidualConvUnit(nn.Module):
    """``conv(relu(conv(relu(x)))) + relu(x)``.

    The skip adds ``relu(x)``, not ``x``: DPT applies its first ReLU in place, and the released
    FlowFeat weights were trained with that behaviour.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = conv3x3(channels, channels)
        self.conv2 = conv3x3(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(x)
        return self.conv2(F.relu(self.conv1(x))) + x


class FusionBlock(nn.Module):
    """Adds a refined lateral map to the coarser path, refines, and upsamples to ``out_hw``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.resConfUnit1 = ResidualConvUnit(channels)
        self.resConfUnit2 = ResidualConvUnit(channels)

    def forward(
        self, path: torch.Tensor, lateral: torch.Tensor | None, out_hw: tuple[int, int]
    ) -> torch.Tensor:
        if lateral is not None:
            path = path + self.resConfUnit1(lateral)
        path = self.resConfUnit2(path)
        # Upsampling to an explicit size equals DPT's "x2, align_corners=True" on even grids and
        # also works on odd ones, where the reference crashes.
        return F.interpolate(path, size=out_hw, mode="bilinear", align_corners=True)


class FusionHead(nn.Module):
    """Projects four feature maps (finest first) to ``width``, fuses them coarsest first, and
    produces an ``out_dim`` map at the requested output size.

    When ``guided``, the first map is a stride-2 guide (half the finest level's stride), added to
    the output head by one convolution: the fusion path ends at stride 2 but is built from
    stride-4 and coarser maps, so it cannot place boundaries finer than those.

    When ``upsample_last``, the head's 3x3 convolutions run at stride 2 and only its final 1x1
    projection at full resolution: the full-resolution 3x3 convolution is most of the decoder's
    arithmetic, and moving it to stride 2 buys a head about 1.5x as wide for the same time.
    ``edge_filter`` then smooths that stride-2 head along the image's colour edges before it is
    upsampled (:class:`GuidedFilter`)."""

    def __init__(
        self, in_channels: Sequence[int], width: int, out_dim: int, head_width: int | None = None,
        guided: bool = False, upsample_last: bool = False, edge_filter: GuidedFilter | None = None,
    ) -> None:
        super().__init__()
        if edge_filter is not None and not upsample_last:
            raise ValueError("edge-aware smoothing needs the head at stride 2 (upsample_last)")
        head_width = head_width or width
        self.guided = guided
        self.upsample_last = upsample_last
        self.edge_filter = edge_filter
        if guided:
            self.guide_rn = conv3x3(in_channels[0], head_width)
            in_channels = in_channels[1:]
        for level, channels in enumerate(in_channels, start=1):
            self.add_module(f"layer{level}_rn", conv3x3(channels, width, bias=False))
            self.add_module(f"refinenet{level}", FusionBlock(width))
        self.output_conv0 = conv3x3(width, head_width)
        self.output_conv1 = nn.Sequential(
            conv3x3(head_width, head_width), nn.ReLU(inplace=True), nn.Conv2d(head_width, out_dim, 1)
        )

    def forward(self, features: Sequence[torch.Tensor], out_hw: tuple[int, int],
                image: torch.Tensor | None = None) -> torch.Tensor:
        """``image``: the RGB input in [0, 1] at ``out_hw``, needed by ``edge_filter`` only."""
        guide = features[0] if self.guided else None
        features = features[1:] if self.guided else features
        laterals = [
            getattr(self, f"layer{level}_rn")(feature) for level, feature in enumerate(features, start=1)
        ]
        finest_h, finest_w = laterals[0].shape[-2:]
        path = laterals[-1]
        for level in range(len(laterals), 0, -1):
            block: FusionBlock = getattr(self, f"refinenet{level}")
            lateral = laterals[level - 1] if level < len(laterals) else None
            upsampled_hw = laterals[level - 2].shape[-2:] if level > 1 else (2 * finest_h, 2 * finest_w)
            path = block(path, lateral, tuple(upsampled_hw))
        path = self.output_conv0(path)
        if guide is not None:
            path = path + self.guide_rn(guide)
        if self.upsample_last:
            refine, relu, project = self.output_conv1
            path = relu(refine(path))
            if self.edge_filter is not None:
                if image is None:
                    raise ValueError("this decoder's edge-aware smoothing needs the input image")
                factor = (image.shape[-2] // path.shape[-2], image.shape[-1] // path.shape[-1])
                path = self.edge_filter(path, F.avg_pool2d(image, factor))  # the image at stride 2
            # projecting before upsampling gives the same map (bilinear weights sum to one) with
            # a quarter of the projection's arithmetic
            return F.interpolate(project(path), size=out_hw, mode="bilinear", align_corners=False)
        path = F.interpolate(path, size=out_hw, mode="bilinear", align_corners=False)
        return self.output_conv1(path)


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel axis of a B x C x H x W map."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class FusionDecoder(nn.Module):
    """Fuses multi-scale CNN features (strides 4..32, preceded by a stride-2 guide when
    ``guided``) into ``fdim`` channel-normalised features (see :class:`FusionHead`)."""

    def __init__(
        self, in_channels: Sequence[int], width: int, head_width: int, fdim: int, guided: bool = False,
        upsample_last: bool = False, edge_filter: GuidedFilter | None = None,
    ) -> None:
        super().__init__()
        self.scratch = FusionHead(in_channels, width=width, out_dim=fdim, head_width=head_width,
                                  guided=guided, upsample_last=upsample_last, edge_filter=edge_filter)
        self.norm = ChannelLayerNorm(fdim)

    def forward(self, features: Sequence[torch.Tensor], out_hw: tuple[int, int],
                image: torch.Tensor | None = None) -> torch.Tensor:
        return self.norm(self.scratch(features, out_hw, image))
