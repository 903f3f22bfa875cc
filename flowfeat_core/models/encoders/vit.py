"""DINO / DINOv2 vision transformers on timm, with the reference position-embedding resampling."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import partial

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from flowfeat_core.models.validation import require_floats, require_int


@dataclass(frozen=True)
class ViTSpec:
    """Architecture of a plain ViT encoder as used by FlowFeat.

    ``hooks`` are the indices of the blocks whose outputs feed the DPT decoder.
    ``layerscale`` and ``mask_token`` are true for DINOv2 and false for DINO (v1).
    """

    patch_size: int
    embed_dim: int
    depth: int
    num_heads: int
    pretrain_img_size: int
    hooks: tuple[int, int, int, int]
    mlp_ratio: float = 4.0
    layerscale: bool = True
    mask_token: bool = True

    def __post_init__(self) -> None:
        for name, high in (("patch_size", 64), ("embed_dim", 8192), ("depth", 64), ("num_heads", 128),
                           ("pretrain_img_size", 4096)):
            require_int("ViTSpec", name, getattr(self, name), 1, high)
        require_floats("ViTSpec", "mlp_ratio", (self.mlp_ratio,), 1, positive=True)
        if self.embed_dim % self.num_heads:
            raise ValueError(
                f"ViTSpec.embed_dim {self.embed_dim} must be a multiple of num_heads {self.num_heads}"
            )
        if not isinstance(self.hooks, (tuple, list)) or not all(isinstance(h, int) for h in self.hooks):
            raise ValueError(f"ViTSpec.hooks must be 4 integer block indices, got {self.hooks!r}")
        hooks = tuple(self.hooks)
        object.__setattr__(self, "hooks", hooks)
        if len(hooks) != 4 or any(not 0 <= h < self.depth for h in hooks):
            raise ValueError(f"ViTSpec.hooks must be 4 block indices in [0, {self.depth}), got {hooks}")
        if self.pretrain_img_size % self.patch_size:
            raise ValueError("ViTSpec.pretrain_img_size must be a multiple of patch_size")

    @property
    def pretrain_grid(self) -> int:
        """Side of the square patch grid the position embeddings were trained on."""
        return self.pretrain_img_size // self.patch_size

    def to_dict(self) -> dict:
        """JSON-friendly form (for checkpoint metadata)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ViTSpec:
        """Inverse of :meth:`to_dict`."""
        return cls(**{**data, "hooks": tuple(data["hooks"])})


#: Blocks whose outputs feed the DPT decoder in every DINO/DINOv2 FlowFeat release.
DINO_HOOKS = (2, 5, 8, 11)


def resample_position_embedding(patch_pos: torch.Tensor, grid_hw: tuple[int, int]) -> torch.Tensor:
    """Resize a square 1 x N x C patch position embedding to ``grid_hw`` like the DINO references.

    Bicubic, no antialiasing, scale factor ``(grid + 0.1) / pretrain_grid`` per axis; the result is
    1 x (h*w) x C.
    """
    n, dim = patch_pos.shape[1], patch_pos.shape[2]
    side = math.isqrt(n)
    h, w = grid_hw
    square = patch_pos.reshape(1, side, side, dim).permute(0, 3, 1, 2)
    resized = F.interpolate(
        square.float(),
        scale_factor=((h + 0.1) / side, (w + 0.1) / side),
        mode="bicubic",
        align_corners=False,
    ).to(patch_pos.dtype)
    if resized.shape[-2:] != (h, w):
        raise RuntimeError(f"position embedding resampled to {tuple(resized.shape[-2:])}, not {grid_hw}")
    return resized.permute(0, 2, 3, 1).reshape(1, h * w, dim)


class DinoViT(VisionTransformer):
    """A timm ViT whose state-dict keys match DINO/DINOv2 and FlowFeat's released encoders."""

    def __init__(self, spec: ViTSpec) -> None:
        super().__init__(
            img_size=spec.pretrain_img_size,
            patch_size=spec.patch_size,
            embed_dim=spec.embed_dim,
            depth=spec.depth,
            num_heads=spec.num_heads,
            mlp_ratio=spec.mlp_ratio,
            qkv_bias=True,
            init_values=1.0 if spec.layerscale else None,
            num_classes=0,
            global_pool="token",
            dynamic_img_size=True,
            norm_layer=partial(nn.LayerNorm, eps=1e-6),
        )
        self.spec = spec
        if spec.mask_token:
            self.mask_token = nn.Parameter(torch.zeros(1, spec.embed_dim))

    @property
    def size_multiple(self) -> int:
        """Input sides must be multiples of this (the patch size)."""
        return self.spec.patch_size

    @property
    def channels(self) -> tuple[int, int, int, int]:
        """Channels of the four hooked token maps."""
        return (self.spec.embed_dim,) * 4

    def _position_embedding(self, grid_hw: tuple[int, int]) -> torch.Tensor:
        """Class + patch position embeddings for a patch grid, 1 x (1 + h*w) x C."""
        cls_pos, patch_pos = self.pos_embed[:, :1], self.pos_embed[:, 1:]
        side = self.spec.pretrain_grid
        if grid_hw != (side, side):
            patch_pos = resample_position_embedding(patch_pos, grid_hw)
        return torch.cat([cls_pos, patch_pos], dim=1)

    def multiscale_features(self, images: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Run the encoder on images whose sides are multiples of the patch size.

        Returns the patch-token maps (B x C x h x w) after each hooked block and the
        final-norm patch-token map of the last block.
        """
        tokens = self.patch_embed.proj(images)
        batch, dim, h, w = tokens.shape
        tokens = tokens.flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls_token.expand(batch, -1, -1), tokens], dim=1)
        tokens = tokens + self._position_embedding((h, w))

        def to_map(x: torch.Tensor) -> torch.Tensor:
            return x[:, 1:].transpose(1, 2).reshape(batch, dim, h, w)

        hooked = []
        for index, block in enumerate(self.blocks):
            tokens = block(tokens)
            if index in self.spec.hooks:
                hooked.append(to_map(tokens))
        return hooked, to_map(self.norm(tokens))
