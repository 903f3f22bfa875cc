"""Install the flowfeat_ros ament_python package (flowfeat_core + flowfeat_ros) with setuptools.

Name, version, description, maintainer and licence come from package.xml, their one source.
"""

from glob import glob
from pathlib import Path
from xml.etree import ElementTree

from setuptools import find_packages, setup

PACKAGE_NAME = "flowfeat_ros"
SHARE_DIR = f"share/{PACKAGE_NAME}"
MANIFEST = ElementTree.parse(Path(__file__).resolve().parent / "package.xml").getroot()

CONSOLE_SCRIPTS = [
    "perception_node = flowfeat_ros.perception_node:main",
    "recorder_node = flowfeat_ros.recorder_node:main",
    "trainer_node = flowfeat_ros.trainer_node:main",
    "video_publisher = flowfeat_ros.video_publisher:main",
    "flowfeat_train = flowfeat_core.cli.train:main",
    "flowfeat_bench = flowfeat_core.cli.bench:main",
    "flowfeat_export = flowfeat_core.cli.export:main",
    "flowfeat_export_default = flowfeat_core.cli.export_default:main",
    "flowfeat_probe = flowfeat_core.cli.probe:main",
    "flowfeat_evaluate = flowfeat_core.cli.evaluate:main",
    "flowfeat_heldout = flowfeat_core.cli.heldout:main",
    "flowfeat_synthetic = flowfeat_core.cli.synthetic:main",
    "flowfeat_round = flowfeat_core.cli.training_round:main",
]


def manifest_text(tag: str) -> str:
    """Whitespace-normalised text of one top-level package.xml element."""
    return " ".join(MANIFEST.findtext(tag, default="").split())


setup(
    name=manifest_text("name"),
    version=manifest_text("version"),
    description=manifest_text("description"),
    maintainer=manifest_text("maintainer"),
    maintainer_email=MANIFEST.find("maintainer").get("email"),
    license=manifest_text("license"),
    python_requires=">=3.10",
    packages=find_packages(exclude=["tests", "tests.*"]),
    package_data={"flowfeat_core": ["weights/*.safetensors"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE_NAME}"]),
        (SHARE_DIR, ["package.xml"]),
        (f"{SHARE_DIR}/launch", sorted(glob("launch/*.launch.py"))),
        (f"{SHARE_DIR}/config", sorted(glob("config/*.yaml") + glob("config/*.xml")
                                       + glob("config/*.rviz"))),
    ],
    zip_safe=False,
    extras_require={"test": ["pytest"]},
    entry_points={"console_scripts": CONSOLE_SCRIPTS},
)
