"""Rigid transforms as ROS records them (geometry_msgs Transform / Pose: translation + unit
quaternion x, y, z, w), interpolated in time, and a small transform tree that chains /tf and
/tf_static edges the way tf2 does, so camera poses can be read from a bag without tf2.

Convention (tf2's): the transform of edge parent -> child maps child coordinates to parent
coordinates, ``X_parent = rotation @ X_child + translation``.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class RigidTransform:
    """``X_parent = rotation @ X_child + translation`` (metres)."""

    rotation: np.ndarray
    translation: np.ndarray

    @staticmethod
    def identity() -> RigidTransform:
        return RigidTransform(np.eye(3), np.zeros(3))

    @staticmethod
    def from_quaternion(translation: tuple[float, float, float],
                        quaternion: tuple[float, float, float, float]) -> RigidTransform:
        """From a ROS (x, y, z) translation and (x, y, z, w) quaternion (normalised here)."""
        return RigidTransform(quaternion_matrix(np.asarray(quaternion, float)),
                              np.asarray(translation, float))

    def __matmul__(self, other: RigidTransform) -> RigidTransform:
        """Chain: ``(a @ b)`` maps b's child frame into a's parent frame."""
        return RigidTransform(self.rotation @ other.rotation,
                              self.rotation @ other.translation + self.translation)

    def inverse(self) -> RigidTransform:
        return RigidTransform(self.rotation.T, -self.rotation.T @ self.translation)


def quaternion_matrix(quaternion: np.ndarray) -> np.ndarray:
    """Rotation matrix of an (x, y, z, w) quaternion; ValueError for a zero quaternion."""
    norm = float(np.linalg.norm(quaternion))
    if not np.isfinite(norm) or norm < 1e-9:
        raise ValueError(f"invalid quaternion {quaternion.tolist()}")
    x, y, z, w = quaternion / norm
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def matrix_quaternion(rotation: np.ndarray) -> np.ndarray:
    """(x, y, z, w) unit quaternion of a rotation matrix (w >= 0)."""
    trace = np.trace(rotation)
    if trace > 0:
        scale = 2.0 * np.sqrt(trace + 1.0)
        quaternion = np.array([rotation[2, 1] - rotation[1, 2], rotation[0, 2] - rotation[2, 0],
                               rotation[1, 0] - rotation[0, 1], 0.25 * scale * scale])
    else:
        axis = int(np.argmax(np.diag(rotation)))
        i, j, k = axis, (axis + 1) % 3, (axis + 2) % 3
        scale = 2.0 * np.sqrt(1.0 + rotation[i, i] - rotation[j, j] - rotation[k, k])
        quaternion = np.zeros(4)
        quaternion[i] = 0.25 * scale * scale
        quaternion[j] = rotation[j, i] + rotation[i, j]
        quaternion[k] = rotation[k, i] + rotation[i, k]
        quaternion[3] = rotation[k, j] - rotation[j, k]
    quaternion /= np.linalg.norm(quaternion)
    return quaternion if quaternion[3] >= 0 else -quaternion


def interpolate(before: RigidTransform, after: RigidTransform, fraction: float) -> RigidTransform:
    """Linear in translation, spherical-linear in rotation (as tf2 interpolates)."""
    first, second = matrix_quaternion(before.rotation), matrix_quaternion(after.rotation)
    cosine = float(first @ second)
    if cosine < 0:
        second, cosine = -second, -cosine
    if cosine > 0.9995:
        quaternion = first + fraction * (second - first)
    else:
        angle = np.arccos(cosine)
        quaternion = (np.sin((1 - fraction) * angle) * first + np.sin(fraction * angle) * second) \
            / np.sin(angle)
    return RigidTransform(quaternion_matrix(quaternion),
                          (1 - fraction) * before.translation + fraction * after.translation)


@dataclass
class TimedTransforms:
    """One edge's transforms over time (stamps in ns, kept sorted)."""

    stamps: list[int] = field(default_factory=list)
    transforms: list[RigidTransform] = field(default_factory=list)

    def add(self, stamp_ns: int, transform: RigidTransform) -> None:
        index = bisect.bisect_left(self.stamps, stamp_ns)
        if index < len(self.stamps) and self.stamps[index] == stamp_ns:
            self.transforms[index] = transform
            return
        self.stamps.insert(index, stamp_ns)
        self.transforms.insert(index, transform)

    def at(self, stamp_ns: int, tolerance_ns: int) -> RigidTransform | None:
        """Interpolated at ``stamp_ns``; beyond the recorded span by more than ``tolerance_ns``:
        None (tf2 would raise an extrapolation error)."""
        if not self.stamps:
            return None
        index = bisect.bisect_left(self.stamps, stamp_ns)
        if index < len(self.stamps) and self.stamps[index] == stamp_ns:
            return self.transforms[index]
        if index == 0:
            return self.transforms[0] if self.stamps[0] - stamp_ns <= tolerance_ns else None
        if index == len(self.stamps):
            return self.transforms[-1] if stamp_ns - self.stamps[-1] <= tolerance_ns else None
        start, end = self.stamps[index - 1], self.stamps[index]
        return interpolate(self.transforms[index - 1], self.transforms[index],
                           (stamp_ns - start) / (end - start))


class TransformTree:
    """Parent/child edges from /tf (timed) and /tf_static (fixed), looked up like tf2's
    ``lookup_transform(root, frame, stamp)`` along the chain from ``frame`` up to ``root``."""

    def __init__(self, tolerance_ns: int = 50_000_000) -> None:
        self.tolerance_ns = tolerance_ns
        self._parent: dict[str, str] = {}
        self._timed: dict[str, TimedTransforms] = {}
        self._static: dict[str, RigidTransform] = {}

    def add(self, parent: str, child: str, stamp_ns: int, transform: RigidTransform,
            static: bool) -> None:
        """Record one edge; a child keeps its first parent (tf2 forbids two)."""
        parent, child = parent.lstrip("/"), child.lstrip("/")
        if self._parent.setdefault(child, parent) != parent:
            return
        if static:
            self._static[child] = transform
        else:
            self._timed.setdefault(child, TimedTransforms()).add(stamp_ns, transform)

    def root_of(self, frame: str) -> str:
        frame = frame.lstrip("/")
        seen = {frame}
        while frame in self._parent:
            frame = self._parent[frame]
            if frame in seen:
                raise ValueError(f"/tf has a loop through frame {frame!r}")
            seen.add(frame)
        return frame

    def chain(self, root: str, frame: str) -> list[str]:
        """Frames from ``frame`` up to (not including) ``root``; ValueError when not connected."""
        root, frame = root.lstrip("/"), frame.lstrip("/")
        chain: list[str] = []
        while frame != root:
            if frame not in self._parent:
                raise ValueError(f"frame {chain[0] if chain else frame!r} is not connected to "
                                 f"{root!r} in /tf and /tf_static")
            chain.append(frame)
            frame = self._parent[frame]
        return chain

    def has_timed_edges(self, root: str, frame: str) -> bool:
        return any(child in self._timed for child in self.chain(root, frame))

    def lookup(self, root: str, frame: str, stamp_ns: int) -> RigidTransform | None:
        """``frame``'s pose in ``root`` at ``stamp_ns`` (None outside the recorded span)."""
        result = RigidTransform.identity()
        for child in self.chain(root, frame):
            edge = self._static.get(child)
            if edge is None:
                edge = self._timed[child].at(stamp_ns, self.tolerance_ns)
                if edge is None:
                    return None
            result = edge @ result
        return result
