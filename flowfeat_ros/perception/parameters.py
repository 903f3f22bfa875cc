"""Parameters of the perception node: declarations (with descriptors and ranges) and validation.

Validation is pure and cheap (no model is loaded here): it checks types, choices, ranges, that
files exist and that a ``.safetensors`` checkpoint carries FlowFeat metadata. Loading happens in
the background (see runtime.py), where a checkpoint that still fails is rejected and reverted.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

from flowfeat_core.data.image_size import DECODER_MAX_PIXELS
from flowfeat_core.hub.errors import CheckpointError
from flowfeat_core.hub.loading import check_model_source
from flowfeat_core.inference.backends import BACKENDS
from flowfeat_core.inference.device import PRECISIONS, check_precision, select_device
from flowfeat_core.inference.pca import FeaturePCA

RELIABILITY_CHOICES = ("best_effort", "reliable")
TRANSPORT_CHOICES = ("raw", "compressed", "both")
#: Largest network input side (a ViT at 2048x2048 already needs gigabytes) and output side.
MAX_NETWORK_SIDE = 2048
MAX_OUTPUT_SIDE = 4096

# What a parameter change reloads (dataclass field metadata): the model, or a probe.
MODEL = {"loads": "model"}
PROBE = {"loads": "probe"}


@dataclass(frozen=True)
class PerceptionSettings:
    """A consistent snapshot of every parameter (the worker reads one snapshot per batch)."""

    checkpoint: str = field(default="default", metadata=MODEL)
    device: str = field(default="auto", metadata=MODEL)
    precision: str = field(default="fp32", metadata=MODEL)
    backend: str = field(default="torch", metadata=MODEL)
    cpu_threads: int = 0
    input_short_side: int = field(default=0, metadata=MODEL)
    input_width: int = field(default=0, metadata=MODEL)
    input_height: int = field(default=0, metadata=MODEL)
    output_width: int = 0
    output_height: int = 0
    feature_channels: int = 0
    pca_basis: str = ""
    depth_probe: str = field(default="", metadata=PROBE)
    segmentation_probe: str = field(default="", metadata=PROBE)
    depth_min: float = 0.0
    depth_max: float = 0.0
    overlay_alpha: float = 0.5
    max_rate_hz: float = 0.0
    max_input_pixels: int = 33_554_432
    max_aspect_ratio: float = 8.0
    cameras: tuple[str, ...] = ()
    input_transport: str = "raw"
    qos_reliability: str = "best_effort"
    qos_depth: int = 1
    output_qos_depth: int = 1
    diagnostics_period_s: float = 1.0
    watch_checkpoint: bool = False
    watch_period_s: float = 1.0
    warn_period_s: float = 5.0

    def model_key(self) -> tuple:
        """The values of the settings a loaded predictor depends on (``MODEL_PARAMETERS``)."""
        return tuple(getattr(self, name) for name in MODEL_PARAMETERS)

    def runtime_key(self) -> tuple:
        """The values of the settings a loaded runtime (predictor + probes) depends on."""
        return tuple(getattr(self, name) for name in RUNTIME_PARAMETERS)


def _descriptor(description: str, *, low: float | None = None, high: float | None = None,
                read_only: bool = False) -> ParameterDescriptor:
    descriptor = ParameterDescriptor(description=description, read_only=read_only)
    if isinstance(low, int) and isinstance(high, int):
        descriptor.integer_range = [IntegerRange(from_value=low, to_value=high)]
    elif low is not None:
        descriptor.floating_point_range = [FloatingPointRange(from_value=float(low),
                                                              to_value=float(high))]
    return descriptor


DESCRIPTORS: dict[str, ParameterDescriptor] = {
    "checkpoint": _descriptor("model: 'default' (embedded EfficientNet-Lite0), a .safetensors "
                              "checkpoint, an official .pth or a released weights name"),
    "device": _descriptor("auto, cpu, cuda or cuda:<index>"),
    "precision": _descriptor(f"{', '.join(PRECISIONS)} (fp16 needs CUDA)"),
    "backend": _descriptor(f"{', '.join(BACKENDS)}: how the model runs; a new one is checked "
                           "against eager PyTorch when it loads and refused if it disagrees"),
    "cpu_threads": _descriptor("torch threads for CPU inference (0: one less than the CPU cores, "
                               "at least 1, leaving a core for message handling)", low=0, high=1024,
                               read_only=True),
    "input_short_side": _descriptor("network input: shorter side in pixels (0: the model's "
                                    "preferred size)", low=0, high=MAX_NETWORK_SIDE),
    "input_width": _descriptor("exact network input width (with input_height; 0: use "
                               "input_short_side)", low=0, high=MAX_NETWORK_SIDE),
    "input_height": _descriptor("exact network input height (with input_width; 0: use "
                                "input_short_side)", low=0, high=MAX_NETWORK_SIDE),
    "output_width": _descriptor("output width (0 and output_height 0: network resolution; one "
                                "of them 0: keep the input aspect)", low=0, high=MAX_OUTPUT_SIDE),
    "output_height": _descriptor("output height (see output_width)", low=0,
                                 high=MAX_OUTPUT_SIDE),
    "feature_channels": _descriptor("channels on flowfeat/features (0: all; fewer: fixed PCA "
                                    "projection)", low=0, high=4096),
    "pca_basis": _descriptor("FeaturePCA file (.safetensors) for colours and channel "
                             "reduction; empty: fit once on the first processed frame"),
    "depth_probe": _descriptor("depth probe file; empty: depth outputs disabled"),
    "segmentation_probe": _descriptor("segmentation probe file; empty: segmentation disabled"),
    "depth_min": _descriptor("depth mapped to the first colour (0 with depth_max 0: per-frame "
                             "2nd percentile)", low=0.0, high=1.0e4),
    "depth_max": _descriptor("depth mapped to the last colour (0: per-frame 98th percentile)",
                             low=0.0, high=1.0e4),
    "overlay_alpha": _descriptor("weight of class colours in segmentation/overlay",
                                 low=0.0, high=1.0),
    "max_rate_hz": _descriptor("upper bound on processed frames per second (0: as fast as the "
                               "model)", low=0.0, high=1000.0),
    "max_input_pixels": _descriptor("input frames with more pixels are refused with a warning "
                                    "before decoding (default 32 MP)", low=1,
                                    high=DECODER_MAX_PIXELS),
    "max_aspect_ratio": _descriptor("input frames whose long side exceeds this many times the "
                                    "short side are refused (the network input would explode)",
                                    low=1.0, high=100.0),
    "cameras": _descriptor("camera names; each gets <name>/image, <name>/camera_info inputs and "
                           "<name>/flowfeat/* outputs, equal-size frames share a batch (empty: "
                           "one camera, no prefix)", read_only=True),
    "input_transport": _descriptor("raw (image), compressed (image/compressed) or both",
                                   read_only=True),
    "qos_reliability": _descriptor("input QoS: best_effort (sensor data) or reliable",
                                   read_only=True),
    "qos_depth": _descriptor("input QoS history depth", low=1, high=100, read_only=True),
    "output_qos_depth": _descriptor("output QoS history depth (reliable)", low=1, high=100,
                                    read_only=True),
    "diagnostics_period_s": _descriptor("period of /diagnostics messages", low=0.1, high=60.0,
                                        read_only=True),
    "watch_checkpoint": _descriptor("reload when the checkpoint or probe files change on disk"),
    "watch_period_s": _descriptor("how often watch_checkpoint polls file times", low=0.1,
                                  high=3600.0, read_only=True),
    "warn_period_s": _descriptor("throttle period of bad-input warnings", low=0.1, high=3600.0,
                                 read_only=True),
}
DEFAULTS = PerceptionSettings()
PARAMETER_NAMES = tuple(f.name for f in fields(PerceptionSettings))
#: Parameters whose change reloads the model; with the probes, those whose change reloads anything.
MODEL_PARAMETERS = tuple(f.name for f in fields(PerceptionSettings) if f.metadata == MODEL)
RUNTIME_PARAMETERS = MODEL_PARAMETERS + tuple(
    f.name for f in fields(PerceptionSettings) if f.metadata == PROBE
)


def settings_from_values(values: dict[str, object]) -> PerceptionSettings:
    """Build settings from parameter values (missing names keep their defaults)."""
    known = {name: value for name, value in values.items() if name in PARAMETER_NAMES}
    if "cameras" in known:
        known["cameras"] = tuple(known["cameras"] or ())
    return PerceptionSettings(**{**DEFAULTS.__dict__, **known})


def _check_checkpoint(source: str) -> str | None:
    try:
        check_model_source(source)
    except CheckpointError as error:
        return f"checkpoint: {error}"
    return None


def _check_device_and_precision(device: str, precision: str) -> str | None:
    try:
        check_precision(precision, select_device(device))
    except ValueError as error:
        return str(error)
    return None


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> str | None:
    return None if value in choices else f"{name} must be one of {list(choices)}, got {value!r}"


def _check_pca_basis(path: str, channels: int, model_fdim: int | None) -> str | None:
    if not path:
        return None
    try:
        basis = FeaturePCA.load(Path(path).expanduser())
    except (OSError, ValueError) as error:
        return f"pca_basis {path!r}: {error}"
    wanted = max(3, channels)
    if basis.n_components < wanted:
        return (f"pca_basis {path!r} has {basis.n_components} components; feature_channels "
                f"and colours need {wanted}")
    if model_fdim is not None and basis.channels != model_fdim:
        return (f"pca_basis {path!r} projects {basis.channels}-channel features; the running "
                f"model has {model_fdim}")
    return None


def _check_feature_channels(channels: int, model_fdim: int | None) -> str | None:
    if model_fdim is not None and channels > model_fdim:
        return f"feature_channels {channels} exceeds the model's {model_fdim} feature channels"
    return None


def check_against_model(settings: PerceptionSettings, model_fdim: int) -> str | None:
    """The checks of ``validate_settings`` that need the loaded model's feature channels."""
    return (_check_feature_channels(settings.feature_channels, model_fdim)
            or _check_pca_basis(settings.pca_basis, settings.feature_channels, model_fdim))


def _check_probe(name: str, path: str) -> str | None:
    if not path:
        return None
    if not Path(path).expanduser().is_file():
        return f"{name} {path!r} does not exist"
    return None


def validate_settings(settings: PerceptionSettings, model_fdim: int | None = None) -> str | None:
    """The first problem with ``settings`` as a one-line reason, or None when they are valid;
    with ``model_fdim`` (the running model's channels) also what must fit that model."""
    checks = (
        lambda: _check_choice("input_transport", settings.input_transport, TRANSPORT_CHOICES),
        lambda: _check_choice("qos_reliability", settings.qos_reliability, RELIABILITY_CHOICES),
        lambda: _check_device_and_precision(settings.device, settings.precision),
        lambda: _check_choice("backend", settings.backend, BACKENDS),
        lambda: ("input_width and input_height must be both 0 or both positive"
                 if (settings.input_width == 0) != (settings.input_height == 0) else None),
        lambda: ("depth_max must be greater than depth_min (or both 0 for automatic range)"
                 if (settings.depth_min or settings.depth_max)
                 and settings.depth_max <= settings.depth_min else None),
        lambda: ("cameras must be distinct non-empty names"
                 if len(set(settings.cameras)) != len(settings.cameras) or "" in settings.cameras
                 else None),
        lambda: _check_checkpoint(settings.checkpoint),
        lambda: _check_probe("depth_probe", settings.depth_probe),
        lambda: _check_probe("segmentation_probe", settings.segmentation_probe),
        lambda: _check_feature_channels(settings.feature_channels, model_fdim),
        lambda: _check_pca_basis(settings.pca_basis, settings.feature_channels, model_fdim),
    )
    for check in checks:
        reason = check()
        if reason:
            return reason
    return None
