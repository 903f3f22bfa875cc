"""Shared pytest set-up: isolate ROS 2 traffic per test session and locate real test data.

Missing data fails the test with the command that installs it; nothing is skipped quietly. With
CI=true any skipped test fails the whole session, and the skip reasons are listed at the end. The
one exception is a test marked ``cuda`` on a machine without a GPU (CI has none): it is skipped
with its reason, counted and listed in its own section, and does not fail the run.
"""

from __future__ import annotations

import atexit
import os
import random
import shutil
import tempfile
from pathlib import Path

import pytest

#: The largest domain id whose DDS ports stay out of Linux's ephemeral ports (ROS 2's domain-id
#: guide: 0..101).
MAX_DOMAIN_ID = 101
#: "gw0", "gw1", ... in the worker processes of a parallel run (pytest-xdist), else "". Workers
#: inherit the environment the controlling process set below.
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")

# Each pytest process uses its own DDS domain, on localhost only: parallel runs never cross-talk,
# and the workers of one run take consecutive domains after the run's.
os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, MAX_DOMAIN_ID)))
if WORKER:
    shifted = int(os.environ["ROS_DOMAIN_ID"]) + int(WORKER.removeprefix("gw"))
    os.environ["ROS_DOMAIN_ID"] = str((shifted - 1) % MAX_DOMAIN_ID + 1)
    # One torch thread per worker (its child processes inherit it): two workers with a torch
    # thread per core each took half again the CPU time of the serial run.
    os.environ["OMP_NUM_THREADS"] = "1"
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")


def _session_temp_dir(variable: str, prefix: str) -> None:
    """Point ``variable`` at a fresh temporary folder, removed when this process exits (a run
    made ~150 MB of compiled packages per session)."""
    path = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    os.environ[variable] = path


# Inductor's compiled kernels and packages stay out of the user's cache; the run's compiles share
# them (a graph compiles once, whichever worker compiles it): the controlling process makes the
# folder, and removes it after its workers have exited.
if "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
    _session_temp_dir("TORCHINDUCTOR_CACHE_DIR", "flowfeat-inductor-")
# ONNX exports made by backend tests (and the nodes they start), and the package's own cache, too;
# each worker has its own, since tests count what they find there.
for variable, prefix in (("FLOWFEAT_BACKEND_CACHE", "flowfeat-backends-"),
                         ("FLOWFEAT_HOME", "flowfeat-home-")):
    if WORKER or variable not in os.environ:
        _session_temp_dir(variable, prefix)

REPO_ROOT = Path(__file__).resolve().parents[1]
OPENCV_DATA_DIR = Path("/usr/share/doc/opencv-doc/examples/data")
REFERENCE_DIR = REPO_ROOT.parent / "shared" / "reference"


def running_in_ci() -> bool:
    """True when the CI environment variable is set to a truthy value (CI=true, CI=1)."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root (the directory holding package.xml)."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def opencv_data_dir() -> Path:
    """OpenCV's sample data directory from the Debian package opencv-doc."""
    if not OPENCV_DATA_DIR.is_dir():
        pytest.fail(
            f"{OPENCV_DATA_DIR} is missing: install it with `apt-get install opencv-doc` "
            "(scripts/setup_env.sh does this)",
            pytrace=False,
        )
    return OPENCV_DATA_DIR


@pytest.fixture(scope="session")
def sample_video(opencv_data_dir: Path) -> Path:
    """vtest.avi: 768x576 pedestrians filmed by a static camera."""
    video = opencv_data_dir / "vtest.avi"
    if not video.is_file():
        pytest.fail(
            f"{video} is missing: reinstall it with `apt-get install --reinstall opencv-doc`",
            pytrace=False,
        )
    return video


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """Reference artefacts of the official FlowFeat implementation, in ../shared/reference."""
    if not REFERENCE_DIR.is_dir():
        pytest.fail(
            f"reference directory {REFERENCE_DIR} is missing "
            "(expected ../shared/reference beside the repository)",
            pytrace=False,
        )
    return REFERENCE_DIR


def _skip_reason(report: pytest.CollectReport | pytest.TestReport) -> str:
    """The message a skip carries; skip reports hold (path, line, message) tuples."""
    if isinstance(report.longrepr, tuple):
        return report.longrepr[2]
    return str(report.longrepr)


class SkipsFailInCI:
    """Records every skip (of a test or a whole module); fails the session if there was one,
    except CUDA tests skipped on a machine without CUDA, which are listed apart."""

    def __init__(self) -> None:
        self.skips: list[str] = []
        self.cuda_skips: list[str] = []

    def _record(self, report: pytest.CollectReport | pytest.TestReport) -> None:
        if not report.skipped or hasattr(report, "wasxfail"):
            return
        line = f"{report.nodeid}: {_skip_reason(report)}"
        if "cuda" in report.keywords and not torch_sees_cuda():
            self.cuda_skips.append(line)
        else:
            self.skips.append(line)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        self._record(report)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._record(report)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.skips and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.cuda_skips:
            terminalreporter.section(f"{len(self.cuda_skips)} CUDA tests skipped: no GPU here", sep="=",
                                     yellow=True)
            for skip in self.cuda_skips:
                terminalreporter.write_line(f"SKIPPED {skip}")
        if not self.skips:
            return
        terminalreporter.section("skipped tests fail the run because CI=true", sep="=", red=True)
        for skip in self.skips:
            terminalreporter.write_line(f"SKIPPED {skip}")


def torch_sees_cuda() -> bool:
    """Whether PyTorch has a usable CUDA device (the condition of every ``cuda`` test)."""
    import torch

    return torch.cuda.is_available()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files with a ``slow`` test first (each file's order kept): the two workers share out the
    long files before the short ones, so neither is left alone with a long file at the end."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)


def pytest_configure(config: pytest.Config) -> None:
    if WORKER:
        import torch

        torch.set_num_threads(1)  # in case torch was imported before OMP_NUM_THREADS was set
    if running_in_ci():
        config.pluginmanager.register(SkipsFailInCI(), "flowfeat-skips-fail-in-ci")
