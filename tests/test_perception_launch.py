"""The launch file (imported when ROS 2 launch is installed, else checked with ``ast``), and
launch_without_ros end to end: video_publisher + perception_node from the same YAML, SIGINT."""

from __future__ import annotations

import ast
import importlib.util
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import yaml
from test_perception_support import (
    CONFIG,
    REPO,
    VIDEO,
    Outputs,
    checkpoint,
    peer,
    spin_until,
)

from flowfeat_ros.dds_profile import profile_variable
from flowfeat_ros.launch_overrides import (
    OVERRIDABLE_PARAMETERS,
    check_parameter_file,
    check_topic_name,
    perception_overrides,
)
from flowfeat_ros.launch_without_ros import build_commands, parse_args
from flowfeat_ros.perception.camera_io import OUTPUT_TOPICS
from flowfeat_ros.playback.settings import PlaybackSettings

LAUNCH_FILE = REPO / "launch" / "perception.launch.py"
LAUNCH_ARGUMENTS = {"camera_topic", "camera_info_topic", "config", "checkpoint", "device",
                    "namespace", "use_sim_time", "record", "recorder_config", "train",
                    "trainer_config"}
__all__ = ["checkpoint", "peer"]  # fixtures used by this module


def test_launch_file_structure():
    if importlib.util.find_spec("launch") and importlib.util.find_spec("launch_ros"):
        spec = importlib.util.spec_from_file_location("perception_launch", LAUNCH_FILE)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        description = module.generate_launch_description()
        names = {e.name for e in description.entities if hasattr(e, "default_value")}
        assert names == LAUNCH_ARGUMENTS
        return
    # ROS 2 launch is not installable from PyPI: check the source structure instead.
    tree = ast.parse(LAUNCH_FILE.read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    called = [c.func.id for c in calls if isinstance(c.func, ast.Name)]
    assert called.count("Node") == 1 and "LaunchDescription" in called
    declared = {c.args[0].value for c in calls
                if isinstance(c.func, ast.Name) and c.func.id == "DeclareLaunchArgument"}
    assert declared == LAUNCH_ARGUMENTS
    executables = {c.args[0].value for c in calls if getattr(c.func, "id", "") == "_node"}
    assert executables == {"perception_node", "recorder_node", "trainer_node"}
    imports = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert {"launch", "launch_ros.actions", "launch.actions"} <= imports
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in functions


def _declared_defaults(tree: ast.AST) -> dict[str, str]:
    """Launch arguments whose default is a literal string, with that default."""
    declared = (c for c in ast.walk(tree)
                if isinstance(c, ast.Call) and getattr(c.func, "id", "") == "DeclareLaunchArgument")
    return {c.args[0].value: kw.value.value for c in declared for kw in c.keywords
            if kw.arg == "default_value" and isinstance(kw.value, ast.Constant)}


def test_launch_file_leaves_the_yaml_checkpoint_and_device_alone():
    """Overridable arguments default to empty and reach the node only through
    perception_overrides, so editing checkpoint/device in the YAML takes effect."""
    tree = ast.parse(LAUNCH_FILE.read_text())
    defaults = _declared_defaults(tree)
    assert all(defaults[name] == "" for name in OVERRIDABLE_PARAMETERS), defaults
    dict_keys = {k.value for d in ast.walk(tree) if isinstance(d, ast.Dict)
                 for k in d.keys if isinstance(k, ast.Constant)}
    assert dict_keys.isdisjoint(OVERRIDABLE_PARAMETERS)
    calls = {c.func.id for c in ast.walk(tree) if isinstance(c, ast.Call)
             and isinstance(c.func, ast.Name)}
    assert "perception_overrides" in calls


def test_overrides_keep_only_given_arguments():
    assert perception_overrides({"checkpoint": "", "device": "cpu"}) == {"device": "cpu"}
    with pytest.raises(ValueError, match="not overridable"):
        perception_overrides({"precision": "bf16"})


def test_launch_without_ros_starts_the_recorder_and_trainer_on_request():
    labels = [c.label for c in build_commands(parse_args([]))]
    assert labels == ["perception_node"]
    commands = {c.label: c.argv for c in build_commands(parse_args(["--record", "--train"]))}
    assert list(commands) == ["perception_node", "recorder_node", "trainer_node"]
    trainer = commands["trainer_node"]
    assert trainer[trainer.index("--params-file") + 1].endswith("config/trainer.yaml")


def test_launch_without_ros_passes_checkpoint_only_when_given(tmp_path):
    defaults = build_commands(parse_args([]))[0].argv
    assert not any(arg.startswith(("checkpoint:=", "device:=")) for arg in defaults), defaults
    given = build_commands(parse_args(["--checkpoint", "x.safetensors", "--device", "cpu"]))[0].argv
    assert "checkpoint:=x.safetensors" in given and "device:=cpu" in given


def launch_until(peer, tmp_path, prefix: str, extra: list[str], done, what: str) -> str:
    """Run launch_without_ros on the sample video (160 px wide, network input 160x120, camera
    under ``/<prefix>/camera``) until ``done()``, then SIGINT; returns its log (exit code 0)."""
    args = [sys.executable, "-m", "flowfeat_ros.launch_without_ros", "--video", str(VIDEO),
            "--video-width", "160", "--camera-topic", f"/{prefix}/camera/image_raw",
            "--camera-info-topic", f"/{prefix}/camera/camera_info",
            "--param", "input_width:=160", "--param", "input_height:=120", *extra]
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    log = tmp_path / "launch.log"
    with log.open("w") as log_file:
        proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        spin_until(peer, done, 90, what)
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
    assert code == 0, log.read_text()
    return log.read_text()


@pytest.mark.ros
def test_launch_without_ros_runs_video_into_perception_and_stops_on_sigint(peer, checkpoint,
                                                                          tmp_path):
    """The checkpoint comes from the YAML (no --checkpoint): editing the config must take effect."""
    config = yaml.safe_load(CONFIG.read_text())
    config["/**/perception"]["ros__parameters"]["checkpoint"] = str(checkpoint)
    config_file = tmp_path / "perception.yaml"
    config_file.write_text(yaml.safe_dump(config))
    outputs = Outputs(peer, "", ("flowfeat/features/pca", "flowfeat/camera_info"))
    log = launch_until(peer, tmp_path, "lwr", ["--config", str(config_file)],
                       lambda: outputs.count("flowfeat/features/pca") >= 3, "perception outputs")
    assert outputs.messages["flowfeat/camera_info"][-1].width == 160
    assert "playing" in log and f"running {checkpoint} on" in log


@pytest.mark.ros
def test_the_shipped_config_publishes_relative_depth_with_no_probe_given(peer, tmp_path):
    """The default model with its shipped relative-depth probe: depth out of the box, on the
    relative topic (no metres, so no flowfeat/depth and no points)."""
    outputs = Outputs(peer, "", ("flowfeat/depth/relative", "flowfeat/depth/colored"))
    log = launch_until(peer, tmp_path, "rel",
                       ["--param", "backend:=torch"],  # speed only: auto compiles meanwhile
                       lambda: outputs.count("flowfeat/depth/relative") >= 2
                       and outputs.count("flowfeat/depth/colored") >= 2, "relative depth")
    depth = outputs.messages["flowfeat/depth/relative"][-1]
    assert depth.encoding == "32FC1" and (depth.width, depth.height) == (160, 120)
    values = np.frombuffer(bytes(depth.data), np.float32)
    assert np.isfinite(values).all() and (values > 0).all() and values.std() > 0
    assert "depth=default" in log
    assert not peer.get_publishers_info_by_topic("/flowfeat/depth")


def test_launch_without_ros_rejects_a_missing_config(tmp_path):
    result = subprocess.run([sys.executable, "-m", "flowfeat_ros.launch_without_ros", "--config",
                             str(tmp_path / "missing.yaml")], capture_output=True, text=True,
                            cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert result.returncode == 2
    assert "does not exist" in result.stderr.strip().splitlines()[-1]


def test_launch_sets_the_fast_dds_profile_variable_of_the_distribution():
    """Fast DDS 2.x (Jazzy) reads only FASTRTPS_*, 3.x (Kilted) FASTDDS_* and warns about the
    other: the launch file sets the one ``profile_variable`` picks, not a fixed name."""
    assert profile_variable({"ROS_DISTRO": "jazzy"}) == "FASTRTPS_DEFAULT_PROFILES_FILE"
    assert profile_variable({"ROS_DISTRO": "kilted"}) == "FASTDDS_DEFAULT_PROFILES_FILE"
    assert profile_variable({}) == "FASTDDS_DEFAULT_PROFILES_FILE", "PyPI wheels: Kilted"
    tree = ast.parse(LAUNCH_FILE.read_text())
    setters = [
        node for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "SetEnvironmentVariable"
    ]  # fmt: skip
    assert len(setters) == 1
    name = setters[0].args[0]
    assert isinstance(name, ast.Call) and getattr(name.func, "id", "") == "profile_variable"


def test_parameter_files_apply_under_any_namespace():
    """A YAML keyed by the bare node name is silently ignored once the node runs in a namespace."""
    for config in sorted(CONFIG.parent.glob("*.yaml")):
        keys = list(yaml.safe_load(config.read_text()))
        assert keys and all(key.startswith("/**/") for key in keys), (config.name, keys)


def test_boolean_launch_arguments_refuse_other_values_before_any_node_starts():
    """``record:=maybe`` used to fail only when the recorder's condition was evaluated, after the
    perception node had started (and was left orphaned): choices make launch refuse it first."""
    tree = ast.parse(LAUNCH_FILE.read_text())
    choices = {
        call.args[0].value: keyword.value
        for call in ast.walk(tree)
        if isinstance(call, ast.Call) and getattr(call.func, "id", "") == "DeclareLaunchArgument"
        for keyword in call.keywords if keyword.arg == "choices"
    }  # fmt: skip
    assert {"record", "train", "use_sim_time"} <= set(choices)
    constants = {n.targets[0].id: ast.literal_eval(n.value) for n in tree.body
                 if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Name)}  # fmt: skip
    for name in ("record", "train", "use_sim_time"):
        assert isinstance(choices[name], ast.Name), "one shared list of boolean spellings"
        allowed = constants[choices[name].id]
        assert {"true", "false"} <= set(allowed) and "maybe" not in allowed


def _node_calls(tree: ast.AST) -> dict[str, ast.Call]:
    """The launch file's ``_node(executable, name, parameters, remappings)`` calls by name."""
    calls = [c for c in ast.walk(tree) if isinstance(c, ast.Call) and getattr(c.func, "id", "") == "_node"]
    return {c.args[1].value: c for c in calls}


def test_launch_nodes_remap_the_camera_and_layer_yaml_then_arguments():
    """Statically, without ``launch``: perception and the recorder share the camera remappings
    (the recorder used to keep recording /camera/image_raw after camera_topic:=...), every
    parameter file is checked before use, every node is built by ``_node``, whose ``on_exit``
    ends the launch, and the recorder and trainer start only on request."""
    tree = ast.parse(LAUNCH_FILE.read_text())
    nodes = _node_calls(tree)
    assert set(nodes) == {"perception", "recorder", "trainer"}
    assert [ast.unparse(nodes[n].args[3]) for n in ("perception", "recorder", "trainer")] == [
        "camera", "camera", "[]"]
    assigns = {n.targets[0].id: n.value for n in ast.walk(tree)
               if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Name)}
    camera = {pair.elts[0].value: ast.unparse(pair.elts[1]) for pair in assigns["camera"].elts}
    assert camera == {"image": "camera_topic", "image/compressed": "f'{camera_topic}/compressed'",
                      "camera_info": "argument('camera_info_topic')"}
    assert ast.unparse(assigns["perception_parameters"]) == "parameters('config', 'perception')"
    assert ast.unparse(nodes["recorder"].args[2]) == "parameters('recorder_config', 'recorder')"
    assert ast.unparse(nodes["trainer"].args[2]) == "parameters('trainer_config', 'trainer')"
    functions = {n.name: n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    assert "check_parameter_file(config, node_name)" in ast.unparse(functions["parameters"])
    node = ast.unparse(functions["_node"])
    assert "namespace=LaunchConfiguration('namespace')" in node
    assert "on_exit=OpaqueFunction(function=_end_launch" in node
    end = ast.unparse(functions["_end_launch"])
    assert "raise RuntimeError" in end and "Shutdown(" in end
    body = ast.unparse(functions["_nodes"])
    assert "argument('record').lower() == 'true'" in body
    assert "argument('train').lower() == 'true'" in body
    assert "perception_overrides(given)" in body


@pytest.mark.parametrize(("content", "reason"), [
    (None, "does not exist"),
    ("a: [unclosed", "not readable YAML"),
    ("/**/recorder:\n  ros__parameters: {}\n", "no section for node 'perception'"),
    ("/**/perception:\n  max_rate_hz: 5.0\n", "needs a ros__parameters mapping"),
])
def test_a_bad_parameter_file_fails_the_launch_with_its_reason(tmp_path, content, reason):
    """rclpy only warns about such a file and runs the node on built-in defaults."""
    config = tmp_path / "bad.yaml"
    if content is not None:
        config.write_text(content)
    with pytest.raises(ValueError, match=reason):
        check_parameter_file(config, "perception")
    if content == "a: [unclosed":  # the launcher's answer, once (the same check for every case)
        result = subprocess.run([sys.executable, "-m", "flowfeat_ros.launch_without_ros",
                                 "--config", str(config)], capture_output=True, text=True,
                                cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=60)
        assert result.returncode == 2 and reason in result.stderr.strip().splitlines()[-1]


def test_shipped_parameter_files_pass_the_check():
    for name in ("perception", "recorder", "trainer"):
        check_parameter_file(CONFIG.parent / f"{name}.yaml", name)


def test_launch_without_ros_gives_the_recorder_the_camera_remappings():
    commands = {c.label: c.argv for c in build_commands(parse_args(
        ["--record", "--camera-topic", "/front/rgb", "--camera-info-topic", "/front/info"]))}
    for label in ("perception_node", "recorder_node"):
        assert {"image:=/front/rgb", "camera_info:=/front/info"} <= set(commands[label]), label


def test_rviz_config_shows_the_node_outputs_with_matching_displays():
    """config/flowfeat.rviz: the PCA image, coloured depth, segmentation overlay and the point
    cloud, each on the node's topic, with the display for its message type and QoS it matches."""
    rviz = yaml.safe_load((REPO / "config" / "flowfeat.rviz").read_text())
    displays = rviz["Visualization Manager"]["Displays"]
    shown = {d["Topic"]["Value"]: d for d in displays}
    topics = {f"/{topic}": msg_type.__name__ for msg_type, topic in OUTPUT_TOPICS.values()}
    assert set(shown) == {"/flowfeat/features/pca", "/flowfeat/depth/colored",
                          "/flowfeat/segmentation/overlay", "/flowfeat/points"}
    for topic, display in shown.items():
        assert display["Class"] == f"rviz_default_plugins/{topics[topic]}", topic
        assert display["Enabled"] and display["Topic"]["Reliability Policy"] == "Reliable", topic
    assert shown["/flowfeat/points"]["Color Transformer"] == "RGB8"  # the cloud's packed rgb field
    camera_frame = PlaybackSettings().frame_id  # what video_publisher stamps by default
    assert rviz["Visualization Manager"]["Global Options"]["Fixed Frame"] == camera_frame


@pytest.mark.parametrize("topic", ["bad topic!", "/cam//image", "/cam/2d", "cam/", ""])
def test_an_invalid_camera_topic_is_refused_in_one_line(topic):
    with pytest.raises(ValueError, match="not a valid ROS 2 topic name"):
        check_topic_name("camera_topic", topic)
    if topic == "bad topic!":  # the launcher's answer, once (the same check for every case)
        result = subprocess.run([sys.executable, "-m", "flowfeat_ros.launch_without_ros",
                                 "--camera-topic", topic], capture_output=True, text=True,
                                cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=60)
        assert result.returncode == 2 and "not a valid ROS 2 topic name" in result.stderr
    for valid in ("/camera/image_raw", "image", "~/image", "/robot_1/cam_front/image_raw"):
        check_topic_name("camera_topic", valid)


def test_a_node_given_an_unparsable_remapping_exits_2_without_a_traceback():
    result = subprocess.run([sys.executable, "-m", "flowfeat_ros.perception_node", "--ros-args",
                             "-r", "image:=bad topic!"], capture_output=True, text=True, cwd=REPO,
                            env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=120)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(
        "perception_node: bad arguments: failed to initialize rcl: Couldn't parse remap rule")
