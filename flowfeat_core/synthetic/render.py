"""Render a :class:`Scene` with exact per-pixel depth, class, instance and forward optical flow.

Every pixel centre is traced back through each layer's homography; the nearest layer whose
cut-out covers it wins (a true z-buffer, so occlusion follows depth). Colour is the layer's
texture sampled bilinearly; flow is where the same texture point projects in the next frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from flowfeat_core.synthetic.scene import Scene

NEAR_PLANE = 0.1
#: Class id of pixels no layer covers (never happens with the default scenes).
IGNORE_CLASS = 255


@dataclass(frozen=True)
class RenderedFrame:
    """One frame: ``rgb`` uint8 HxWx3, ``depth`` float32 metres (0 = none), ``classes`` uint8,
    ``instances`` uint8 (0 = background stuff), forward ``flow`` float32 HxWx2 to the next frame
    (pixels, x then y) and ``flow_valid`` (the point stays visible and inside the next frame)."""

    rgb: np.ndarray
    depth: np.ndarray
    classes: np.ndarray
    instances: np.ndarray
    flow: np.ndarray
    flow_valid: np.ndarray


@dataclass(frozen=True)
class _LayerHits:
    """Per pixel: winning layer index (-1 none), its texture coordinates and depth."""

    layer: np.ndarray
    tex_s: np.ndarray
    tex_t: np.ndarray
    depth: np.ndarray


def _pixel_grid(height: int, width: int) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width]
    return np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)]).astype(np.float64)


def _trace(scene: Scene, frame: int) -> _LayerHits:
    pixels = _pixel_grid(scene.height, scene.width)
    count = pixels.shape[1]
    best_depth = np.full(count, np.inf)
    best_layer = np.full(count, -1)
    best_s = np.zeros(count)
    best_t = np.zeros(count)
    for index, layer in enumerate(scene.layers):
        texture_h, texture_w = layer.mask.shape
        coords = np.linalg.inv(scene.camera.homography(layer, frame)) @ pixels
        with np.errstate(divide="ignore", invalid="ignore"):
            depth = 1.0 / coords[2]
            tex_s, tex_t = coords[0] * depth, coords[1] * depth
        inside = (coords[2] > 0) & (depth > NEAR_PLANE) & (tex_s >= 0) & (tex_t >= 0)
        inside &= (tex_s <= texture_w - 1) & (tex_t <= texture_h - 1)
        rows = np.clip(np.round(tex_t), 0, texture_h - 1).astype(int)
        cols = np.clip(np.round(tex_s), 0, texture_w - 1).astype(int)
        inside &= layer.mask[rows, cols] > 0
        wins = inside & (depth < best_depth)
        best_depth[wins], best_layer[wins] = depth[wins], index
        best_s[wins], best_t[wins] = tex_s[wins], tex_t[wins]
    shape = (scene.height, scene.width)
    return _LayerHits(
        best_layer.reshape(shape), best_s.reshape(shape), best_t.reshape(shape), best_depth.reshape(shape)
    )


def _colours(scene: Scene, hits: _LayerHits) -> np.ndarray:
    rgb = np.zeros((scene.height, scene.width, 3), np.uint8)
    map_s, map_t = hits.tex_s.astype(np.float32), hits.tex_t.astype(np.float32)
    for index, layer in enumerate(scene.layers):
        selected = hits.layer == index
        if selected.any():
            sampled = cv2.remap(layer.texture, map_s, map_t, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
            rgb[selected] = sampled[selected]
    return rgb


def _forward_flow(
    scene: Scene, frame: int, hits: _LayerHits, next_hits: _LayerHits
) -> tuple[np.ndarray, np.ndarray]:
    height, width = hits.layer.shape
    flow = np.zeros((height, width, 2), np.float32)
    valid = np.zeros((height, width), bool)
    ys, xs = np.mgrid[0:height, 0:width]
    for index, layer in enumerate(scene.layers):
        selected = hits.layer == index
        if not selected.any():
            continue
        texture = np.stack([hits.tex_s[selected], hits.tex_t[selected], np.ones(selected.sum())])
        projected = scene.camera.homography(layer, frame + 1) @ texture
        in_front = projected[2] > NEAR_PLANE
        target_x = projected[0] / np.where(in_front, projected[2], 1.0)
        target_y = projected[1] / np.where(in_front, projected[2], 1.0)
        flow[selected, 0] = target_x - xs[selected]
        flow[selected, 1] = target_y - ys[selected]
        col, row = np.round(target_x).astype(int), np.round(target_y).astype(int)
        inside = in_front & (col >= 0) & (row >= 0) & (col < width) & (row < height)
        seen = np.zeros_like(inside)
        seen[inside] = next_hits.layer[row[inside], col[inside]] == index
        valid[selected] = seen
    return flow, valid


def render_scene(scene: Scene) -> list[RenderedFrame]:
    """All ``scene.frames`` frames with their labels and forward flow."""
    hits = [_trace(scene, frame) for frame in range(scene.frames + 1)]
    class_of = np.array([layer.class_id for layer in scene.layers] + [IGNORE_CLASS], np.uint8)
    instance_of = np.array([layer.instance_id for layer in scene.layers] + [0], np.uint8)
    frames = []
    for frame in range(scene.frames):
        current = hits[frame]
        flow, flow_valid = _forward_flow(scene, frame, current, hits[frame + 1])
        covered = current.layer >= 0
        frames.append(
            RenderedFrame(
                rgb=_colours(scene, current),
                depth=np.where(covered, current.depth, 0.0).astype(np.float32),
                classes=class_of[current.layer],
                instances=instance_of[current.layer],
                flow=flow,
                flow_valid=flow_valid & covered,
            )
        )
    return frames
