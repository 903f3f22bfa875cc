"""Launch the FlowFeat perception node (optionally the recorder and the on-robot trainer) with
config/perception.yaml.

    ros2 launch flowfeat_ros perception.launch.py camera_topic:=/camera/image_raw \
        checkpoint:=default device:=auto record:=true train:=true

``train:=true`` starts trainer_node (config/trainer.yaml): it trains on the recorder's bags and
keeps the perception node on the deployed checkpoint (see README, "On-robot learning").

Without ROS 2 launch (PyPI install): ``python -m flowfeat_ros.launch_without_ros`` takes the
same arguments and starts the same nodes with the same YAML.
"""

import os

from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable, Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from flowfeat_ros.dds_profile import PROFILE_NAME, PROFILE_VARIABLES, profile_variable
from flowfeat_ros.launch_overrides import (
    OVERRIDABLE_PARAMETERS,
    check_parameter_file,
    check_topic_name,
    perception_overrides,
)
from flowfeat_ros.package_paths import config_dir

BOOLEAN_CHOICES = ["true", "false", "True", "False"]


def generate_launch_description() -> LaunchDescription:
    """Arguments: camera_topic, camera_info_topic, config, checkpoint, device, namespace,
    use_sim_time, record, recorder_config, train, trainer_config."""
    configs = config_dir()
    arguments = [
        DeclareLaunchArgument("camera_topic", default_value="/camera/image_raw",
                              description="input sensor_msgs/Image topic "
                                          "(<topic>/compressed is the CompressedImage input)"),
        DeclareLaunchArgument("camera_info_topic", default_value="/camera/camera_info",
                              description="input sensor_msgs/CameraInfo topic"),
        DeclareLaunchArgument("config", default_value=str(configs / "perception.yaml"),
                              description="perception parameters YAML"),
        DeclareLaunchArgument("checkpoint", default_value="",
                              description="'default', a .safetensors/.pth file or a released "
                                          "weights name (empty: the config's)"),
        DeclareLaunchArgument("device", default_value="",
                              description="auto, cpu or cuda (empty: the config's)"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the nodes"),
        # choices: a bad value fails the launch before any node starts (none is left orphaned)
        DeclareLaunchArgument("use_sim_time", default_value="false", choices=BOOLEAN_CHOICES,
                              description="use /clock (rosbag playback)"),
        DeclareLaunchArgument("record", default_value="false", choices=BOOLEAN_CHOICES,
                              description="also start recorder_node with recorder_config"),
        DeclareLaunchArgument("recorder_config", default_value=str(configs / "recorder.yaml"),
                              description="recorder parameters YAML"),
        DeclareLaunchArgument("train", default_value="false", choices=BOOLEAN_CHOICES,
                              description="also start trainer_node with trainer_config"),
        DeclareLaunchArgument("trainer_config", default_value=str(configs / "trainer.yaml"),
                              description="trainer parameters YAML"),
    ]
    use_sim_time = ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool)
    # Large images over best-effort QoS need Fast DDS's shared memory sized for them (see the
    # profile's comment); a profile the user already chose wins. The variable is the one this
    # distribution's Fast DDS reads (Fast DDS 2.x on Jazzy ignores FASTDDS_*).
    environment = []
    if not any(os.environ.get(name) for name in PROFILE_VARIABLES):
        environment = [SetEnvironmentVariable(profile_variable(), str(configs / PROFILE_NAME))]
    nodes = OpaqueFunction(function=_nodes, args=[use_sim_time])
    return LaunchDescription([*arguments, *environment, nodes])


def _nodes(context: LaunchContext, use_sim_time: ParameterValue) -> list[Node]:
    """The nodes asked for. Each parameter file is checked first (a missing or malformed one
    fails the launch instead of running a node on built-in defaults); checkpoint/device go to
    perception only when given, so the YAML's apply. The recorder gets perception's camera
    remappings, so it records the camera perception sees. Any node that exits ends the launch,
    with status 1 when it failed, so a supervisor sees it."""
    def argument(name: str) -> str:
        return LaunchConfiguration(name).perform(context)

    def parameters(config_argument: str, node_name: str) -> list[object]:
        config = argument(config_argument)
        check_parameter_file(config, node_name)
        return [config, {"use_sim_time": use_sim_time}]

    camera_topic = argument("camera_topic")
    for name in ("camera_topic", "camera_info_topic"):
        check_topic_name(name, argument(name))
    camera = [("image", camera_topic), ("image/compressed", f"{camera_topic}/compressed"),
              ("camera_info", argument("camera_info_topic"))]
    given = {name: argument(name) for name in OVERRIDABLE_PARAMETERS}
    perception_parameters = parameters("config", "perception")
    perception_parameters[1].update(perception_overrides(given))
    nodes = [_node("perception_node", "perception", perception_parameters, camera)]
    if argument("record").lower() == "true":
        nodes.append(_node("recorder_node", "recorder", parameters("recorder_config", "recorder"),
                           camera))
    if argument("train").lower() == "true":
        nodes.append(_node("trainer_node", "trainer", parameters("trainer_config", "trainer"), []))
    return nodes


def _node(executable: str, name: str, parameters: list[object],
          remappings: list[tuple[str, str]]) -> Node:
    return Node(package="flowfeat_ros", executable=executable, name=name,
                namespace=LaunchConfiguration("namespace"), parameters=parameters,
                remappings=remappings, output="screen",
                on_exit=OpaqueFunction(function=_end_launch, args=[executable]))


def _end_launch(context: LaunchContext, executable: str) -> list[Shutdown]:
    """A node ended: stop the others; raising makes ``ros2 launch`` exit with status 1."""
    status = context.locals.event.returncode
    if status != 0:
        raise RuntimeError(f"{executable} exited with status {status}; stopping every node")
    return [Shutdown(reason=f"{executable} exited")]
