"""The DPT decoder of the reference FlowFeat implementation (ViT tokens -> dense features)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from flowfeat_core.models.decoders.fusion import ChannelLayerNorm, FusionHead


class Reassemble(nn.Module):
    """1x1 projection of a token map followed by a resampling layer (DPT's ``act_postprocess``)."""

    def __init__(self, channels: int, resample: nn.Module | None) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(channels, channels, kernel_size=1)]
        if resample is not None:
            layers.append(resample)
        self.post = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.post(x)


class DPTDecoder(nn.Module):
    """Reassembles four ViT token maps at strides 1/4, 1/2, 1, 2 of the patch grid, fuses them and
    returns ``fdim`` channel-normalised features at the requested output size."""

    def __init__(self, readout_channels: Sequence[int], fdim: int) -> None:
        super().__init__()
        c1, c2, c3, c4 = readout_channels
        self.act_postprocess1 = Reassemble(c1, nn.ConvTranspose2d(c1, c1, kernel_size=4, stride=4))
        self.act_postprocess2 = Reassemble(c2, nn.ConvTranspose2d(c2, c2, kernel_size=2, stride=2))
        self.act_postprocess3 = Reassemble(c3, None)
        self.act_postprocess4 = Reassemble(c4, nn.Conv2d(c4, c4, kernel_size=3, stride=2, padding=1))
        self.scratch = FusionHead(readout_channels, width=fdim, out_dim=fdim)
        self.norm = ChannelLayerNorm(fdim)

    def forward(self, token_maps: Sequence[torch.Tensor], out_hw: tuple[int, int]) -> torch.Tensor:
        reassembled = [
            self.act_postprocess1(token_maps[0]),
            self.act_postprocess2(token_maps[1]),
            self.act_postprocess3(token_maps[2]),
            self.act_postprocess4(token_maps[3]),
        ]
        return self.norm(self.scratch(reassembled, out_hw))
