"""ModelConfig: everything needed to rebuild a FlowFeat network (stored in our checkpoints).

Plain data: it validates its own fields and knows nothing of the encoder registry, which makes
configs (``registry.model_config``) and checks encoder names when a network is built."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from flowfeat_core.models.encoders.vit import ViTSpec
from flowfeat_core.models.validation import require_floats, require_int, require_positive_float

# Keys written by earlier versions that carry no information; accepted when reading old files.
_LEGACY_EMPTY_KEYS = ("extra",)
# Fields added later, left out of the dict while they hold their default (which means "as
# before"): the configs of earlier models, and so their fingerprints (which probes, exports and
# caches record), stay what they were.
_ADDED_FIELDS = ("decoder_guidance", "decoder_upsample_last", "decoder_edge_radius", "decoder_edge_eps")
#: Integer fields and their allowed ranges.
INT_FIELDS = {"fdim": (1, 4096), "decoder_width": (1, 4096), "decoder_head_width": (1, 4096),
              "input_short_side": (16, 4096), "decoder_edge_radius": (0, 64)}


@dataclass(frozen=True)
class ModelConfig:
    """A FlowFeat network: ``encoder`` names a registry entry (``models/registry.py``), which
    fixes the decoder kind; ``vit_spec`` describes a ViT encoder's architecture;
    ``decoder_width`` / ``decoder_head_width`` size the fusion decoder; ``decoder_guidance`` adds
    the encoder's stride-2 map to the fusion decoder's output head; ``decoder_upsample_last``
    runs that head at stride 2 and only its final 1x1 projection at full resolution (so a wider
    head costs what a narrow one did); ``decoder_edge_radius`` > 0 smooths that stride-2 head
    along the image's colour edges before it is upsampled (a guided filter fitted at stride 4 in
    windows of that radius, regulariser ``decoder_edge_eps``; no parameters, so it can be switched
    on for a trained decoder); ``mean``/``std`` normalise the input; ``input_short_side`` is the
    preferred network input (shorter image side).
    Build one with ``registry.model_config`` to get the entry's values.
    """

    encoder: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    input_short_side: int
    fdim: int = 128
    vit_spec: ViTSpec | None = None
    decoder_width: int = 64
    decoder_head_width: int = 32
    decoder_guidance: bool = False
    decoder_upsample_last: bool = False
    decoder_edge_radius: int = 0
    decoder_edge_eps: float = 1e-4

    def __post_init__(self) -> None:
        """Reject impossible values with the field's name (configs come from checkpoint files)."""
        if not isinstance(self.encoder, str) or not self.encoder:
            raise ValueError(f"ModelConfig.encoder must be an encoder name, got {self.encoder!r}")
        for name, (low, high) in INT_FIELDS.items():
            require_int("ModelConfig", name, getattr(self, name), low, high)
        for name in ("decoder_guidance", "decoder_upsample_last"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"ModelConfig.{name} must be true or false, got {getattr(self, name)!r}")
        object.__setattr__(self, "decoder_edge_eps",
                           require_positive_float("ModelConfig", "decoder_edge_eps", self.decoder_edge_eps))
        if self.decoder_edge_radius and not self.decoder_upsample_last:
            raise ValueError("ModelConfig.decoder_edge_radius needs decoder_upsample_last: the edge-aware "
                             "smoothing filters that stride-2 head")
        object.__setattr__(self, "mean", require_floats("ModelConfig", "mean", self.mean, 3))
        object.__setattr__(self, "std", require_floats("ModelConfig", "std", self.std, 3, positive=True))
        if self.vit_spec is not None and not isinstance(self.vit_spec, ViTSpec):
            raise ValueError(f"ModelConfig.vit_spec must be a ViTSpec, got {type(self.vit_spec).__name__}")

    def to_dict(self) -> dict:
        """JSON-friendly form."""
        data = asdict(self)
        data["vit_spec"] = self.vit_spec.to_dict() if self.vit_spec else None
        for key in _ADDED_FIELDS:
            if data[key] == self.__dataclass_fields__[key].default:
                del data[key]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        """Inverse of :meth:`to_dict`; rejects unknown keys."""
        values = {k: v for k, v in data.items() if not (k in _LEGACY_EMPTY_KEYS and not v)}
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        if values.get("vit_spec") is not None:
            values["vit_spec"] = ViTSpec.from_dict(values["vit_spec"])
        for key in ("mean", "std"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)
