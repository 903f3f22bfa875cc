"""Write benchmark sequences as rosbag2 bags (REP 118 depth) and as folders of PNG files.

Bag topics: ``image`` (rgb8), ``depth`` (32FC1 metres, 0 where nothing was rendered), ``labels``
and ``instances`` (mono8 class / instance ids). Folder layout per sequence: ``images/``,
``depth/`` (16-bit PNG millimetres, 0 = invalid), ``labels/`` and ``instances/`` (8-bit PNG ids),
``flow/`` (float32 .npy HxWx2 forward flow, ``flow_valid`` as a uint8 PNG) and ``meta.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer

from flowfeat_core.data.ros_types import TYPESTORE
from flowfeat_core.synthetic.benchmark import SyntheticSequence

IMAGE_MSGTYPE = "sensor_msgs/msg/Image"
START_STAMP_NS = 1_700_000_000_000_000_000


@dataclass(frozen=True)
class BagTopics:
    """Topic names of a benchmark bag."""

    image: str = "/camera/color/image_raw"
    depth: str = "/camera/depth/image_raw"
    labels: str = "/camera/labels"
    instances: str = "/camera/instances"


def image_message(pixels: np.ndarray, encoding: str, stamp_ns: int, frame_id: str = "camera") -> object:
    """A rosbags sensor_msgs/Image of rgb8 / mono8 / 32FC1 ``pixels`` (little endian, no padding)."""
    types = TYPESTORE.types
    header = types["std_msgs/msg/Header"](
        types["builtin_interfaces/msg/Time"](stamp_ns // 1_000_000_000, stamp_ns % 1_000_000_000), frame_id
    )
    dtype = {"rgb8": np.uint8, "mono8": np.uint8, "32FC1": np.dtype("<f4")}[encoding]
    array = np.ascontiguousarray(pixels, dtype=dtype)
    height, width = array.shape[:2]
    data = array.reshape(height, -1).view(np.uint8)
    return types[IMAGE_MSGTYPE](header, height, width, encoding, 0, data.shape[1], data.reshape(-1))


def write_sequence_bag(
    sequence: SyntheticSequence,
    path: str | Path,
    topics: BagTopics = BagTopics(),
    fps: float = 10.0,
    depth_delay_ns: int = 0,
    storage: str = "mcap",
    labels: bool = True,
) -> Path:
    """Write ``sequence`` as a rosbag2 bag directory; depth is stamped ``depth_delay_ns`` later
    than colour (as on real RGB-D cameras), labels exactly with colour. Without ``labels`` only
    the colour topic is written, as a robot's camera recording would be."""
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"bag {path} already exists")
    plugin = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}[storage]
    period_ns = round(1e9 / fps)
    written = vars(topics) if labels else {"image": topics.image}
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        connections = {
            name: writer.add_connection(topic, IMAGE_MSGTYPE, typestore=TYPESTORE)
            for name, topic in written.items()
        }
        for index, frame in enumerate(sequence.frames):
            stamp = START_STAMP_NS + index * period_ns
            messages = {
                "image": (frame.rgb, "rgb8", stamp),
                "depth": (frame.depth, "32FC1", stamp + depth_delay_ns),
                "labels": (frame.classes, "mono8", stamp),
                "instances": (frame.instances, "mono8", stamp),
            }
            for name in connections:
                pixels, encoding, message_stamp = messages[name]
                raw = TYPESTORE.serialize_cdr(image_message(pixels, encoding, message_stamp), IMAGE_MSGTYPE)
                writer.write(connections[name], message_stamp, raw)
    return path


def write_sequence_folder(sequence: SyntheticSequence, folder: str | Path) -> Path:
    """Write ``sequence`` as PNG/NPY files under ``folder`` (see the module doc)."""
    folder = Path(folder)
    for sub in ("images", "depth", "labels", "instances", "flow"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for index, frame in enumerate(sequence.frames):
        name = f"{index:06d}"
        depth_mm = np.clip(np.round(frame.depth * 1000.0), 0, 65535).astype(np.uint16)
        writes = {
            "images": cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR),
            "depth": depth_mm,
            "labels": frame.classes,
            "instances": frame.instances,
        }
        for sub, pixels in writes.items():
            if not cv2.imwrite(str(folder / sub / f"{name}.png"), pixels):
                raise OSError(f"cannot write {folder / sub / name}.png")
        np.save(folder / "flow" / f"{name}.npy", frame.flow)
        cv2.imwrite(str(folder / "flow" / f"{name}_valid.png"), frame.flow_valid.astype(np.uint8) * 255)
    meta = {
        "name": sequence.name,
        "intrinsics": sequence.intrinsics.tolist(),
        "class_names": list(sequence.class_names),
        "class_colors": [list(color) for color in sequence.class_colors],
        "depth_png": "uint16 millimetres, 0 = invalid",
        "labels_ignore": 255,
    }
    (folder / "meta.json").write_text(json.dumps(meta, indent=2))
    return folder
