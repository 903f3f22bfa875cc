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

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from flowfeat_ros.dds_profile import PROFILE_NAME, PROFILE_VARIABLES, profile_variable
from flowfeat_ros.launch_overrides import OVERRIDABLE_PARAMETERS, perception_overrides
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
    recorder = Node(
        package="flowfeat_ros",
        executable="recorder_node",
        name="recorder",
        namespace=LaunchConfiguration("namespace"),
        parameters=[LaunchConfiguration("recorder_config"), {"use_sim_time": use_sim_time}],
        condition=IfCondition(LaunchConfiguration("record")),
        output="screen",
    )
    trainer = Node(
        package="flowfeat_ros",
        executable="trainer_node",
        name="trainer",
        namespace=LaunchConfiguration("namespace"),
        parameters=[LaunchConfiguration("trainer_config"), {"use_sim_time": use_sim_time}],
        condition=IfCondition(LaunchConfiguration("train")),
        output="screen",
    )
    # Large images over best-effort QoS need Fast DDS's shared memory sized for them (see the
    # profile's comment); a profile the user already chose wins. The variable is the one this
    # distribution's Fast DDS reads (Fast DDS 2.x on Jazzy ignores FASTDDS_*).
    environment = []
    if not any(os.environ.get(name) for name in PROFILE_VARIABLES):
        environment = [SetEnvironmentVariable(profile_variable(), str(configs / PROFILE_NAME))]
    perception = OpaqueFunction(function=_perception_node, args=[use_sim_time])
    return LaunchDescription([*arguments, *environment, perception, recorder, trainer])


def _perception_node(context: object, use_sim_time: ParameterValue) -> list[Node]:
    """The perception node; checkpoint/device go to it only when given, so the YAML's apply."""
    given = {name: LaunchConfiguration(name).perform(context) for name in OVERRIDABLE_PARAMETERS}
    camera_topic = LaunchConfiguration("camera_topic")
    return [Node(
        package="flowfeat_ros",
        executable="perception_node",
        name="perception",
        namespace=LaunchConfiguration("namespace"),
        parameters=[LaunchConfiguration("config"),
                    {**perception_overrides(given), "use_sim_time": use_sim_time}],
        remappings=[("image", camera_topic),
                    ("image/compressed", [camera_topic, "/compressed"]),
                    ("camera_info", LaunchConfiguration("camera_info_topic"))],
        output="screen",
    )]
