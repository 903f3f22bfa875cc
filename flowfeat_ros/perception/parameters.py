"""Parameters of the perception node: declarations (with descriptors and ranges) and validation.

Validation is pure and cheap (no model is loaded here): it checks types, choices, ranges, that
files exist and that a ``.safetensors`` checkpoint carries FlowFeat metadata. Loading happens in
the background (see runtime.py), where a checkpoint that still fails is rejected and reverted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flowfeat_core.data.image_size import DECODER_MAX_PIXELS
from flowfeat_core.hub.errors import CheckpointError
from flowfeat_core.hub.loading import check_model_source
from flowfeat_core.inference.backends import BACKEND_CHOICES
from flowfeat_core.inference.device import PRECISIONS, check_precision, select_device
from flowfeat_core.inference.pca import FeaturePCA
from flowfeat_core.probes.io import probe_file
from flowfeat_core.settings import declared, range_problem, setting
from flowfeat_core.tracking.propagation import PropagationConfig

RELIABILITY_CHOICES = ("best_effort", "reliable")
TRANSPORT_CHOICES = ("raw", "compressed", "both")
#: Largest network input side (a ViT at 2048x2048 already needs gigabytes) and output side.
MAX_NETWORK_SIDE = 2048
MAX_OUTPUT_SIDE = 4096

# What a parameter change reloads (a setting's tag): the model, or a probe.
MODEL = "loads-model"
PROBE = "loads-probe"


@dataclass(frozen=True)
class PerceptionSettings:
    """Every parameter of the perception node, declared once (see flowfeat_core.settings); an
    instance is a consistent snapshot (the worker reads one snapshot per batch)."""

    checkpoint: str = setting("default", "model: 'default' (embedded EfficientNet-Lite0), a "
                              ".safetensors checkpoint, an official .pth or a released weights "
                              "name", tags=(MODEL,))
    device: str = setting("auto", "auto, cpu, cuda or cuda:<index>", tags=(MODEL,))
    precision: str = setting("fp32", f"{', '.join(PRECISIONS)} (fp16 needs CUDA)",
                             choices=PRECISIONS, tags=(MODEL,))
    backend: str = setting("auto", "how the model runs: auto serves eager PyTorch at once and "
                           "swaps in the fastest backend this machine builds in the background; "
                           "any other is checked against eager PyTorch when it loads and refused "
                           "if it disagrees", choices=BACKEND_CHOICES, tags=(MODEL,))
    cpu_threads: int = setting(0, "torch threads for CPU inference (0: one less than the CPU "
                               "cores, at least 1, leaving a core for message handling)",
                               low=0, high=1024, read_only=True)
    input_short_side: int = setting(0, "network input: shorter side in pixels (0: the model's "
                                    "preferred size)", low=0, high=MAX_NETWORK_SIDE, tags=(MODEL,))
    input_width: int = setting(0, "exact network input width (with input_height; 0: use "
                               "input_short_side)", low=0, high=MAX_NETWORK_SIDE, tags=(MODEL,))
    input_height: int = setting(0, "exact network input height (with input_width; 0: use "
                                "input_short_side)", low=0, high=MAX_NETWORK_SIDE, tags=(MODEL,))
    output_width: int = setting(0, "output width (0 and output_height 0: network resolution; one "
                                "of them 0: keep the input aspect)", low=0, high=MAX_OUTPUT_SIDE)
    output_height: int = setting(0, "output height (see output_width)", low=0,
                                 high=MAX_OUTPUT_SIDE)
    feature_channels: int = setting(0, "channels on flowfeat/features (0: all; fewer: fixed PCA "
                                    "projection)", low=0, high=4096)
    pca_basis: str = setting("", "FeaturePCA file (.safetensors) for colours and channel "
                             "reduction; empty: fit once on the first processed frame")
    depth_probe: str = setting("default", "depth probe file; 'default': the probe attached to "
                               "the checkpoint (the on-robot loop deploys each model with one), "
                               "else the relative-depth probe shipped with the default model "
                               "(learned from camera motion); empty: depth outputs disabled",
                               tags=(PROBE,))
    segmentation_probe: str = setting("", "segmentation probe file; empty: segmentation "
                                      "disabled", tags=(PROBE,))
    depth_min: float = setting(0.0, "depth mapped to the first colour (0 with depth_max 0: "
                               "per-frame 2nd percentile)", low=0.0, high=1.0e4)
    depth_max: float = setting(0.0, "depth mapped to the last colour (0: per-frame 98th "
                               "percentile)", low=0.0, high=1.0e4)
    overlay_alpha: float = setting(0.5, "weight of class colours in segmentation/overlay",
                                   low=0.0, high=1.0)
    max_rate_hz: float = setting(0.0, "upper bound on processed frames per second (0: as fast "
                                 "as the model)", low=0.0, high=1000.0)
    max_input_pixels: int = setting(33_554_432, "input frames with more pixels are refused "
                                    "with a warning before decoding (32 MP)", low=1,
                                    high=DECODER_MAX_PIXELS)
    max_aspect_ratio: float = setting(8.0, "input frames whose long side exceeds this many "
                                      "times the short side are refused (the network input "
                                      "would explode)", low=1.0, high=100.0)
    cameras: tuple[str, ...] = setting((), "camera names; each gets <name>/image, "
                                       "<name>/camera_info inputs and <name>/flowfeat/* outputs, "
                                       "equal-size frames share a batch (empty: one camera, no "
                                       "prefix)", read_only=True)
    input_transport: str = setting("raw", "raw (image), compressed (image/compressed) or both",
                                   choices=TRANSPORT_CHOICES, read_only=True)
    qos_reliability: str = setting("best_effort", "input QoS: best_effort (sensor data) or "
                                   "reliable", choices=RELIABILITY_CHOICES, read_only=True)
    qos_depth: int = setting(1, "input QoS history depth", low=1, high=100, read_only=True)
    output_qos_depth: int = setting(1, "output QoS history depth (reliable)", low=1, high=100,
                                    read_only=True)
    track_stride: int = setting(8, "tracking: feature pixels per side of a propagation cell",
                                low=1, high=64, read_only=True)
    track_radius: int = setting(6, "tracking: cells (of track_stride pixels) an object may move "
                                "between processed frames", low=1, high=64, read_only=True)
    track_context_frames: int = setting(2, "tracking: latest predictions propagated from besides "
                                        "the prompted frame", low=0, high=16, read_only=True)
    track_topk: int = setting(5, "tracking: most similar context cells each cell takes its label "
                              "from", low=1, high=64, read_only=True)
    track_temperature: float = setting(0.1, "tracking: softmax temperature of the neighbours' "
                                       "weights", low=0.001, high=10.0, read_only=True)
    track_history_frames: int = setting(30, "tracking: processed frames a stamped prompt can "
                                        "name (kept while a track output is subscribed)",
                                        low=1, high=300, read_only=True)
    track_max_objects: int = setting(16, "tracking: objects followed at once", low=1, high=255,
                                     read_only=True)
    track_lost_fraction: float = setting(0.1, "tracking: an object is lost below this share of "
                                         "its prompted area", low=0.0, high=1.0, read_only=True)
    diagnostics_period_s: float = setting(1.0, "period of /diagnostics messages", low=0.1,
                                          high=60.0, read_only=True)
    watch_checkpoint: bool = setting(False, "reload when the checkpoint or probe files change "
                                     "on disk")
    watch_period_s: float = setting(1.0, "how often watch_checkpoint polls file times", low=0.1,
                                    high=3600.0, read_only=True)
    warn_period_s: float = setting(5.0, "throttle period of bad-input warnings", low=0.1,
                                   high=3600.0, read_only=True)

    def propagation(self) -> PropagationConfig:
        """The label propagation protocol of the tracker."""
        return PropagationConfig(self.track_context_frames, self.track_topk,
                                 self.track_temperature, self.track_radius, self.track_stride)

    def model_key(self) -> tuple:
        """The values of the settings a loaded predictor depends on (``MODEL_PARAMETERS``)."""
        return tuple(getattr(self, name) for name in MODEL_PARAMETERS)

    def runtime_key(self) -> tuple:
        """The values of the settings a loaded runtime (predictor + probes) depends on."""
        return tuple(getattr(self, name) for name in RUNTIME_PARAMETERS)


DEFAULTS = PerceptionSettings()
SETTINGS = {item.name: item for item in declared(PerceptionSettings)}
PARAMETER_NAMES = tuple(SETTINGS)
#: Parameters whose change reloads the model; with the probes, those whose change reloads anything.
MODEL_PARAMETERS = tuple(name for name, item in SETTINGS.items() if MODEL in item.info.tags)
RUNTIME_PARAMETERS = MODEL_PARAMETERS + tuple(
    name for name, item in SETTINGS.items() if PROBE in item.info.tags
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


def _check_pca_basis(path: str, channels: int, model_fdim: int | None) -> str | None:
    if not path:
        return None
    try:
        basis = FeaturePCA.load(Path(path).expanduser())
    except (OSError, ValueError) as error:
        return f"pca_basis {path!r}: {error}"
    problem = basis.problem_with(basis.channels if model_fdim is None else model_fdim,
                                 max(3, channels))
    return f"pca_basis {path!r}: {problem}" if problem else None


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
    if not probe_file(path).is_file():
        return f"{name} {path!r} does not exist"
    return None


def validate_settings(settings: PerceptionSettings, model_fdim: int | None = None) -> str | None:
    """The first problem with ``settings`` as a one-line reason, or None when they are valid;
    with ``model_fdim`` (the running model's channels) also what must fit that model."""
    for name, item in SETTINGS.items():  # declared ranges and choices
        reason = range_problem(item, getattr(settings, name))
        if reason:
            return reason
    checks = (
        lambda: _check_device_and_precision(settings.device, settings.precision),
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
