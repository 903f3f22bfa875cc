"""Random scenes of textured planar layers seen by a moving pinhole camera.

Geometry (camera frame: x right, y down, z forward; metres): a fronto-parallel wall far away, a
floor plane below the camera (running on behind the wall), and a few cut-out objects
(fronto-parallel planes at 2.5-6 m) that move on their own. Every layer maps texture pixel
(s, t) to the world point ``origin + s * axis_u + t * axis_v``, so each frame sees
a layer through an exact homography.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flowfeat_core.synthetic.textures import CLASSES, FLOOR, OBJECT_CLASSES, WALL, cutout_mask, random_texture


@dataclass(frozen=True)
class PlanarLayer:
    """A textured planar cut-out; ``instance_id`` is 0 for stuff (wall, floor), else 1, 2, ...;
    ``source`` is the photo its texture was cut from."""

    texture: np.ndarray
    mask: np.ndarray
    origin: np.ndarray
    axis_u: np.ndarray
    axis_v: np.ndarray
    velocity: np.ndarray
    class_id: int
    instance_id: int
    source: Path

    def plane_matrix(self, frame: int) -> np.ndarray:
        """3x3 matrix taking homogeneous texture coordinates to world points at ``frame``."""
        origin = self.origin + frame * self.velocity
        return np.stack([self.axis_u, self.axis_v, origin], axis=1)


@dataclass(frozen=True)
class CameraPath:
    """Intrinsics and, per frame, world-to-camera rotation and camera centre."""

    intrinsics: np.ndarray
    rotations: np.ndarray
    centres: np.ndarray

    def homography(self, layer: PlanarLayer, frame: int) -> np.ndarray:
        """Texture-to-image homography of ``layer`` at ``frame``; its third output row is depth."""
        plane = layer.plane_matrix(frame)
        plane[:, 2] -= self.centres[frame]
        return self.intrinsics @ self.rotations[frame] @ plane


@dataclass(frozen=True)
class Scene:
    """Layers and camera path of one sequence of ``frames`` frames of ``height`` x ``width``."""

    height: int
    width: int
    frames: int
    layers: tuple[PlanarLayer, ...]
    camera: CameraPath


def _yaw_pitch(yaw: float, pitch: float) -> np.ndarray:
    cos_y, sin_y, cos_p, sin_p = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
    yaw_matrix = np.array([[cos_y, 0, -sin_y], [0, 1, 0], [sin_y, 0, cos_y]])
    pitch_matrix = np.array([[1, 0, 0], [0, cos_p, sin_p], [0, -sin_p, cos_p]])
    return pitch_matrix @ yaw_matrix


def random_camera(rng: np.random.Generator, height: int, width: int, frames: int) -> CameraPath:
    """A camera translating (mostly forward/sideways) and slowly turning; one extra pose at the end
    so that the last frame has a forward flow too."""
    focal = 0.9 * width
    intrinsics = np.array([[focal, 0, width / 2 - 0.5], [0, focal, height / 2 - 0.5], [0, 0, 1]])
    step = np.array([rng.uniform(-0.12, 0.12), rng.uniform(-0.03, 0.03), rng.uniform(0.0, 0.15)])
    turn = np.array([rng.uniform(-0.015, 0.015), rng.uniform(-0.005, 0.005)])
    times = np.arange(frames + 1)
    rotations = np.stack([_yaw_pitch(*(turn * time)) for time in times])
    return CameraPath(intrinsics, rotations, times[:, None] * step[None])


def _stuff_layers(rng: np.random.Generator, focal: float, pool: str) -> list[PlanarLayer]:
    wall_depth = rng.uniform(8.0, 12.0)
    camera_height = rng.uniform(1.0, 1.5)
    wall_scale = wall_depth / focal
    wall_w, wall_h = int(30.0 / wall_scale), int((10.5 + camera_height) / wall_scale)
    wall_texture, wall_source = random_texture(rng, WALL, wall_h, wall_w, pool)
    wall = PlanarLayer(
        wall_texture,
        np.ones((wall_h, wall_w), np.uint8),
        np.array([-15.0, -10.0, wall_depth]),
        np.array([wall_scale, 0, 0]),
        np.array([0, wall_scale, 0]),
        np.zeros(3),
        WALL,
        0,
        wall_source,
    )
    floor_scale = 0.05
    floor_w, floor_h = int(30.0 / floor_scale), int((wall_depth + 0.2) / floor_scale)
    floor_texture, floor_source = random_texture(rng, FLOOR, floor_h, floor_w, pool)
    floor = PlanarLayer(
        floor_texture,
        np.ones((floor_h, floor_w), np.uint8),
        np.array([-15.0, camera_height, 0.3]),
        np.array([floor_scale, 0, 0]),
        np.array([0, 0, floor_scale]),
        np.zeros(3),
        FLOOR,
        0,
        floor_source,
    )
    return [wall, floor]


def _object_layer(
    rng: np.random.Generator, camera: CameraPath, height: int, width: int, instance_id: int, pool: str
) -> PlanarLayer:
    class_id = int(rng.choice(OBJECT_CLASSES))
    depth = rng.uniform(2.5, 6.0)
    focal = camera.intrinsics[0, 0]
    scale = depth / focal
    size_w = rng.uniform(0.5, 1.4) * depth / 4.0
    size_h = size_w * rng.uniform(0.6, 1.5)
    tex_w, tex_h = max(8, int(size_w / scale)), max(8, int(size_h / scale))
    centre_x = rng.uniform(0.15, 0.85) * width
    centre_y = rng.uniform(0.15, 0.85) * height
    ray = np.linalg.inv(camera.intrinsics) @ np.array([centre_x, centre_y, 1.0])
    centre = ray * depth
    origin = centre - np.array([tex_w * scale / 2, tex_h * scale / 2, 0.0])
    velocity = np.array([rng.uniform(-0.1, 0.1), rng.uniform(-0.04, 0.04), rng.uniform(-0.08, 0.08)])
    texture, source = random_texture(rng, class_id, tex_h, tex_w, pool)
    return PlanarLayer(
        texture,
        cutout_mask(rng, CLASSES[class_id].shape, tex_h, tex_w),
        origin,
        np.array([scale, 0, 0]),
        np.array([0, scale, 0]),
        velocity,
        class_id,
        instance_id,
        source,
    )


def random_scene(
    rng: np.random.Generator,
    height: int,
    width: int,
    frames: int,
    max_objects: int = 4,
    pool: str = "benchmark",
) -> Scene:
    """Wall, floor and 2..``max_objects`` moving objects under a random camera path, textured
    from the photos of texture ``pool`` (see :mod:`flowfeat_core.synthetic.textures`)."""
    if height < 16 or width < 16 or frames < 1:
        raise ValueError(f"scene needs at least 16x16 pixels and 1 frame, got {height}x{width}, {frames}")
    camera = random_camera(rng, height, width, frames)
    layers = _stuff_layers(rng, camera.intrinsics[0, 0], pool)
    count = int(rng.integers(2, max(2, max_objects) + 1))
    layers += [_object_layer(rng, camera, height, width, index + 1, pool) for index in range(count)]
    return Scene(height, width, frames, tuple(layers), camera)
