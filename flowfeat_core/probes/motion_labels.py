"""Depth-probe training pairs from a moving camera's recordings alone: each labelled frame gets
the depth that its own motion gives (geometry/motion_depth.py), metric when every recording has
camera poses (odometry or /tf), relative otherwise.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from flowfeat_core.data.bag_reader import iter_image_messages
from flowfeat_core.data.camera_recording import CameraRecording
from flowfeat_core.data.errors import DataError
from flowfeat_core.data.ros_types import header_stamp_ns
from flowfeat_core.geometry.motion_depth import (
    MotionDepthConfig,
    MotionDepthError,
    OdometryMismatchError,
    frame_depth,
)
from flowfeat_core.probes.labeled_data import LabeledPair, decode_depth_message
from flowfeat_core.probes.metrics import DepthMetrics, median_scaled
from flowfeat_core.probes.training import resize_target, target_validity
from flowfeat_core.training.teacher_flow import TeacherFlow

LOG = logging.getLogger(__name__)
#: A frame whose labels cover less than this share of its pixels is not used.
MIN_COVERAGE = 0.05


@dataclass
class MotionLabels:
    """Labelled frames (depth 0 = no label) and what happened to the others."""

    pairs: list[LabeledPair] = field(default_factory=list)
    metric: bool = True
    coverage: list[float] = field(default_factory=list)
    #: (recording source, header stamp in ns) of each labelled frame, to find its other data.
    origins: list[tuple[Path, int]] = field(default_factory=list)
    unlabelled: Counter[str] = field(default_factory=Counter)

    def summary(self) -> dict[str, object]:
        return {"frames": len(self.pairs), "metric": self.metric,
                "median_coverage": float(np.median(self.coverage)) if self.coverage else 0.0,
                "unlabelled": dict(self.unlabelled)}


def motion_labels(recordings: Sequence[CameraRecording], teacher: TeacherFlow, every: int = 1,
                  metric: bool = True) -> MotionLabels:
    """Depth labels for every ``every``-th frame of each recording. Metric only if ``metric``
    and every recording has poses. DataError when no frame of any recording gets labels (the
    reason, e.g. a static camera, in one line), or when most frames of a recording contradict its
    odometry (a few may: a pair can be dominated by things that move on their own)."""
    with_poses = sum(r.poses is not None for r in recordings)
    labels = MotionLabels(metric=metric and with_poses == len(recordings))
    if metric and 0 < with_poses < len(recordings):
        LOG.warning("%d of %d recordings have no odometry or /tf: all labels are relative",
                    len(recordings) - with_poses, len(recordings))
    first_reason = ""
    for recording in recordings:
        poses = recording.poses if labels.metric else None
        labelled_before = len(labels.pairs)
        indices = range(0, len(recording.frames), max(1, every))
        mismatched: list[str] = []
        for index in indices:
            try:
                result = frame_depth(recording.frames, index, recording.intrinsics, teacher,
                                     MotionDepthConfig(), poses)
            except OdometryMismatchError as error:
                mismatched.append(str(error))
                labels.unlabelled["odometry mismatch"] += 1
                if 2 * len(mismatched) > len(indices):  # most frames: the odometry is wrong
                    raise DataError(f"{recording.source}: {len(mismatched)} of {len(indices)} "
                                    f"frames: {mismatched[0]}") from None
                continue
            except MotionDepthError as error:
                first_reason = first_reason or f"{recording.source.name}: {error}"
                labels.unlabelled[str(error).split(": ", 1)[-1].split(" (", 1)[0]] += 1
                continue
            if result.coverage < MIN_COVERAGE:
                labels.unlabelled["too few labelled pixels"] += 1
                continue
            labels.pairs.append((recording.frames[index], np.nan_to_num(result.depth, nan=0.0)))
            labels.coverage.append(result.coverage)
            labels.origins.append((recording.source, int(recording.stamps_ns[index])))
        if len(labels.pairs) == labelled_before:
            LOG.warning("%s %s: no frame got depth labels from motion", recording.source,
                        recording.topic)
    if not labels.pairs:
        raise DataError(f"no depth labels from motion ({first_reason}); nothing was trained")
    return labels


def labels_against_depth(labels: MotionLabels, depth_topic: str,
                         max_stamp_diff_ns: int) -> dict[str, float]:
    """How close the labels themselves are to a depth sensor's (``depth_topic`` in the labelled
    frames' bags, matched by header stamp): metric labels as they are, relative ones after
    median scaling. A check of the intrinsics, the odometry and its mount."""
    metrics = DepthMetrics()
    for bag in dict.fromkeys(source for source, _ in labels.origins):
        measured = {header_stamp_ns(message): message
                    for _, message in iter_image_messages(bag, depth_topic)}
        stamps = np.array(sorted(measured), np.int64)
        for (_, label), (source, stamp) in zip(labels.pairs, labels.origins, strict=True):
            if source != bag or not stamps.size:
                continue
            nearest = int(stamps[np.argmin(np.abs(stamps - stamp))])
            if abs(nearest - stamp) > max_stamp_diff_ns:
                continue
            truth = resize_target(decode_depth_message(measured[nearest]), label.shape)
            valid = (label > 0) & target_validity("depth", truth)
            prediction = label if labels.metric else median_scaled(label, truth, valid)
            metrics.add(prediction, truth, valid)
    return metrics.result()
