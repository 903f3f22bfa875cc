"""One worker step: decode the newest frames, run the model once per group of equal-size frames,
render and publish only the outputs someone subscribes to, with the input headers unchanged."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header

from flowfeat_core.data.image_codec import decode_image_message
from flowfeat_core.data.image_size import FrameLimits, message_image_size
from flowfeat_core.inference.pca import FeaturePCA
from flowfeat_ros.image_conversion import (
    camera_info_problem,
    copy_header,
    features_to_msg,
    rgb8_to_msg,
    scale_camera_info,
)
from flowfeat_ros.perception import rendering
from flowfeat_ros.perception.camera_io import MODEL_OUTPUTS, CameraIO
from flowfeat_ros.perception.frame_mailbox import PendingFrame
from flowfeat_ros.perception.parameters import PerceptionSettings
from flowfeat_ros.perception.pipeline_stats import PipelineStats
from flowfeat_ros.perception.probe_outputs import point_cloud, probe_messages, run_probes
from flowfeat_ros.perception.problems import (
    BAD_CAMERA_INFO,
    BAD_IMAGE,
    PCA_BASIS_UNUSABLE,
    POINTS_UNAVAILABLE,
    TOO_LARGE,
    ProblemReporter,
)
from flowfeat_ros.perception.runtime import Runtime
from flowfeat_ros.perception.tracking import TRACK_OUTPUTS, CameraTracking

Message = Image | CameraInfo | PointCloud2 | DiagnosticArray


@dataclass
class DecodedFrame:
    """A frame ready for the model: its camera, RGB pixels, header, arrival time, wanted
    outputs and the camera_info checked against it (the camera's latest may change meanwhile)."""

    camera: CameraIO
    rgb: np.ndarray
    header: Header
    received: float
    wanted: frozenset[str]
    info: CameraInfo | None


def _stamp_seconds(header: Header) -> float:
    return header.stamp.sec + header.stamp.nanosec * 1e-9


class FrameProcessor:
    """Turns batches of pending frames into published outputs (runs on the worker thread)."""

    def __init__(self, cameras: dict[str, CameraIO], tracking: dict[str, CameraTracking],
                 stats: PipelineStats, problems: ProblemReporter,
                 now: Callable[[], float | None]) -> None:
        self.cameras = cameras
        self.tracking = tracking
        self.stats = stats
        self.problems = problems
        self.now = now
        self._projection: FeaturePCA | None = None
        self._projection_key: tuple | None = None

    def process(self, pending: list[PendingFrame], runtime: Runtime,
                settings: PerceptionSettings) -> None:
        """Decode, batch by size, infer and publish ``pending`` frames."""
        limits = FrameLimits(settings.max_input_pixels, settings.max_aspect_ratio)
        frames = [f for f in (self._decode(p, limits) for p in pending) if f is not None]
        groups: dict[tuple[int, int], list[DecodedFrame]] = {}
        for frame in frames:
            groups.setdefault(frame.rgb.shape[:2], []).append(frame)
        for group in groups.values():
            self._process_group(group, runtime, settings)
        self.stats.finish_batch()

    def _refuse(self, kind: str, label: str, reason: str) -> None:
        self.stats.record_invalid()
        self.problems.warning(kind, label, f"skipping frame: {reason}")

    def _decode(self, pending: PendingFrame, limits: FrameLimits) -> DecodedFrame | None:
        camera = self.cameras[pending.camera]
        wanted = camera.wanted()
        if not wanted:
            return None
        label = camera.label
        with self.stats.stage("decode"):
            try:
                too_large = limits.problem(*message_image_size(pending.msg))
                if too_large:
                    self._refuse(TOO_LARGE, label, too_large)
                    return None
                rgb = decode_image_message(pending.msg)
            except (ValueError, TypeError, AttributeError) as error:  # malformed fields too
                self._refuse(BAD_IMAGE, label, str(error))
                return None
        too_large = limits.problem(rgb.shape[1], rgb.shape[0])  # formats without a readable header
        if too_large:
            self._refuse(TOO_LARGE, label, too_large)
            return None
        info = camera.latest_info
        info_problem = None if info is None else camera_info_problem(info, rgb.shape[1],
                                                                     rgb.shape[0])
        if info_problem:
            self._refuse(BAD_CAMERA_INFO, label, info_problem)
            return None
        return DecodedFrame(camera, rgb, copy_header(pending.msg.header), pending.received,
                            wanted, info)

    def _process_group(self, group: list[DecodedFrame], runtime: Runtime,
                       settings: PerceptionSettings) -> None:
        predictor = runtime.predictor
        input_hw = group[0].rgb.shape[:2]
        out_hw = rendering.output_size(settings.output_width, settings.output_height, input_hw,
                                       predictor.network_size(input_hw))
        model_frames = [f for f in group if f.wanted & MODEL_OUTPUTS]
        dense = encoder = None
        if model_frames:
            with self.stats.stage("preprocess"):
                batch = predictor.preprocess([f.rgb for f in model_frames])
            with self.stats.stage("model"):
                encoder, dense = predictor.run(batch)
        index = {id(f): i for i, f in enumerate(model_frames)}
        for frame in group:
            row = index.get(id(frame))
            messages = self._render(frame, row, dense, encoder, runtime, settings, out_hw)
            with self.stats.stage("publish"):
                for name, msg in messages:
                    frame.camera.publish(name, msg)
            now = self.now()
            self.stats.record_frame(None if now is None else now - _stamp_seconds(frame.header),
                                    time.monotonic() - frame.received)

    def _projection_for(self, dense: torch.Tensor, settings: PerceptionSettings,
                        runtime: Runtime, channels: int) -> FeaturePCA:
        key = (id(runtime.predictor), settings.pca_basis, max(3, channels))
        if self._projection_key != key:
            self._projection = self._load_basis(settings.pca_basis, dense.shape[1],
                                                max(3, channels))
            if self._projection is None:
                self._projection = FeaturePCA.fit(dense, max(3, channels))
            self._projection_key = key
        return self._projection

    def _load_basis(self, path: str, channels: int, components: int) -> FeaturePCA | None:
        """The configured basis, or None (with a warning) when there is none or it no longer
        fits the model (e.g. after a swap to a model with other channels)."""
        if not path:
            return None
        try:
            basis = FeaturePCA.load(Path(path).expanduser())
        except (OSError, ValueError) as error:
            reason = str(error)
        else:
            reason = basis.problem_with(channels, components)
            if reason is None:
                return basis
        self.problems.warning(PCA_BASIS_UNUSABLE, "pca_basis", f"{path!r} unusable ({reason}); "
                              "fitting a basis on this frame instead")
        return None

    def _render(self, frame: DecodedFrame, row: int | None, dense: torch.Tensor | None,
                encoder: torch.Tensor | None, runtime: Runtime, settings: PerceptionSettings,
                out_hw: tuple[int, int]) -> list[tuple[str, Message]]:
        wanted, header = frame.wanted, frame.header
        messages: list[tuple[str, Message]] = []
        info = frame.info
        scaled_info = scale_camera_info(info, out_hw[1], out_hw[0]) if info is not None else None
        if "camera_info" in wanted and scaled_info is not None:
            scaled_info.header = copy_header(header)
            messages.append(("camera_info", scaled_info))
        if row is None:
            return messages
        with self.stats.stage("postprocess"):
            features = dense[row:row + 1]
            fdim = features.shape[1]
            channels = settings.feature_channels if 0 < settings.feature_channels < fdim else 0
            if wanted & {"features", "pca", "points"}:
                projection = self._projection_for(features, settings, runtime, channels)
            if "features" in wanted:
                reduced = projection.project(features, channels) if channels else features
                maps = rendering.to_hwc(rendering.resize_maps(reduced, out_hw))[0]
                messages.append(("features", features_to_msg(maps, header)))
            colours = None
            if wanted & {"pca", "points"}:
                colours = rendering.resize_images(projection.colorize(features), out_hw)[0]
            if "pca" in wanted:
                messages.append(("pca", rgb8_to_msg(colours, header)))
            probe_maps = run_probes(wanted, features, encoder[row:row + 1], runtime, out_hw)
            messages += probe_messages(wanted, header, frame.rgb, probe_maps, settings)
            if "points" in wanted:
                cloud, missing = point_cloud(header, probe_maps, scaled_info, colours, runtime)
                if cloud is not None:
                    messages.append(("points", cloud))
                else:
                    self.problems.warning(POINTS_UNAVAILABLE, frame.camera.label,
                                          f"flowfeat/points is subscribed but not published: "
                                          f"{missing}")
        if wanted & TRACK_OUTPUTS:
            with self.stats.stage("track"):
                messages += self.tracking[frame.camera.name].step(header, features, frame.rgb,
                                                                  out_hw, wanted)
        return messages
