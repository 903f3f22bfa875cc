"""Probe outputs of one frame: depth (metres or relative, REP 118), its colouring, segmentation
ids and overlay, and the point cloud, each computed only when someone wants it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header

from flowfeat_ros.image_conversion import float32_to_msg, mono8_to_msg, rgb8_to_msg, uint16_to_msg
from flowfeat_ros.perception import rendering
from flowfeat_ros.perception.parameters import PerceptionSettings
from flowfeat_ros.perception.runtime import Runtime
from flowfeat_ros.perception.tracking import TRACK_OUTPUTS
from flowfeat_ros.point_cloud import point_cloud_msg, unproject

DEPTH_CONSUMERS = frozenset({"depth", "depth_relative", "depth_colored", "points"})
SEGMENTATION_CONSUMERS = frozenset({"segmentation", "segmentation_overlay", "points"})
#: Outputs every model gives, probe or not (tracking runs on the features).
MODEL_ONLY_OUTPUTS = frozenset({"features", "pca", "camera_info"}) | TRACK_OUTPUTS


def available_outputs(runtime: Runtime) -> frozenset[str]:
    """The outputs ``runtime`` can fill: a topic nobody can ever receive on is not advertised
    (a silent flowfeat/depth looks like a stalled node to anyone who subscribes)."""
    outputs = set(MODEL_ONLY_OUTPUTS)
    if runtime.depth_probe is not None:
        metric = bool(runtime.depth_probe.metric)
        outputs |= {"depth", "depth_colored", "points"} if metric else {"depth_relative",
                                                                         "depth_colored"}
    if runtime.segmentation_probe is not None:
        outputs |= {"segmentation", "segmentation_overlay"}
    return frozenset(outputs)


@dataclass
class ProbeMaps:
    """One frame's probe outputs at the output size (None where no probe ran)."""

    depth: np.ndarray | None = None
    metric: bool = False
    class_ids: np.ndarray | None = None
    class_colors: np.ndarray | None = None


def run_probes(wanted: frozenset[str], features: torch.Tensor, encoder: torch.Tensor,
               runtime: Runtime, out_hw: tuple[int, int]) -> ProbeMaps:
    """Run the probes whose outputs (or the point cloud) someone wants."""
    depth_probe, seg_probe = runtime.depth_probe, runtime.segmentation_probe
    maps = ProbeMaps()
    if depth_probe is not None and wanted & DEPTH_CONSUMERS:
        with torch.inference_mode():
            depth = depth_probe(features, encoder).float()
        maps.depth = np.ascontiguousarray(rendering.resize_maps(depth, out_hw)[0, 0].cpu().numpy())
        maps.metric = bool(depth_probe.metric)
    if seg_probe is not None and wanted & SEGMENTATION_CONSUMERS:
        with torch.inference_mode():
            logits = seg_probe(features, encoder)
        maps.class_ids = rendering.class_ids(logits, out_hw)[0]
        maps.class_colors = np.asarray(seg_probe.class_colors, dtype=np.uint8).reshape(-1, 3)
    return maps


def probe_messages(wanted: frozenset[str], header: Header, rgb: np.ndarray, maps: ProbeMaps,
                   settings: PerceptionSettings) -> list[tuple[str, Image]]:
    """Image outputs of the probes: metric depth on ``depth``, relative on ``depth_relative``."""
    messages: list[tuple[str, Image]] = []
    if maps.depth is not None:
        topic = "depth" if maps.metric else "depth_relative"
        if topic in wanted:
            messages.append((topic, float32_to_msg(maps.depth, header)))
        if "depth_colored" in wanted:
            colours = rendering.colorize_depth(maps.depth, settings.depth_min, settings.depth_max)
            messages.append(("depth_colored", rgb8_to_msg(colours, header)))
    if maps.class_ids is not None:
        ids = maps.class_ids
        if "segmentation" in wanted:
            build = mono8_to_msg if ids.dtype == np.uint8 else uint16_to_msg
            messages.append(("segmentation", build(ids, header)))
        if "segmentation_overlay" in wanted:
            image = rendering.resize_images(rgb[None], ids.shape)[0]
            overlay = rendering.overlay_classes(image, ids, maps.class_colors,
                                                settings.overlay_alpha)
            messages.append(("segmentation_overlay", rgb8_to_msg(overlay, header)))
    return messages


def point_cloud(header: Header, maps: ProbeMaps, info: CameraInfo | None, colours: np.ndarray,
                runtime: Runtime) -> tuple[PointCloud2 | None, str]:
    """(cloud, "") from metric depth and intrinsics, or (None, why it cannot be made)."""
    missing = ("no depth probe is loaded" if runtime.depth_probe is None
               else "the depth probe is relative (no metres)" if not maps.metric
               else "no camera_info was received" if info is None else "")
    if missing:
        return None, missing
    try:
        points = unproject(maps.depth, info.k)
    except ValueError as error:
        return None, str(error)
    return point_cloud_msg(points, header, colours, maps.class_ids), ""
