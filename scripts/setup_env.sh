#!/usr/bin/env bash
# Idempotent set-up shared by run_demo.sh and run_tests.sh (safe to run again; fast once done):
#   1. the Debian package opencv-doc (sample videos and images), installed only when missing;
#   2. a Python 3.11 virtual environment at <repo>/.venv;
#   3. requirements.txt and this repository (editable, console scripts included) inside it,
#      re-installed only when requirements*.txt, setup.py, setup.cfg or package.xml change.
# Environment: PYTHON picks the interpreter that creates .venv (default: python3.11, else python3).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV_DIR="$REPO_ROOT/.venv"
STAMP_FILE="$VENV_DIR/.flowfeat_setup_stamp"
OPENCV_SAMPLE_VIDEO="/usr/share/doc/opencv-doc/examples/data/vtest.avi"
# The ROS 2 Kilted wheels on PyPI are built for CPython 3.11 only.
REQUIRED_PYTHON="3.11"

log() { echo "[setup_env] $*"; }
die() { echo "[setup_env] ERROR: $*" >&2; exit 1; }

# Install Debian packages as root: directly when root, else through password-less sudo.
apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install these Debian packages by hand: $*"
    local as_root=()
    if [[ "$(id -u)" -ne 0 ]]; then
        command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null \
            || die "the Debian packages '$*' are missing and installing them needs root: run this" \
                "script as root, set up password-less sudo, or run 'apt-get install -y $*' as root"
        as_root=(sudo -n)
    fi
    log "installing Debian packages: $*"
    "${as_root[@]}" apt-get update
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
}

ensure_opencv_doc() {
    [[ -f "$OPENCV_SAMPLE_VIDEO" ]] && return 0
    apt_install opencv-doc
    [[ -f "$OPENCV_SAMPLE_VIDEO" ]] || die "opencv-doc is installed but $OPENCV_SAMPLE_VIDEO is missing" \
        "(does a dpkg path-exclude in /etc/dpkg/dpkg.cfg.d/ drop /usr/share/doc?)"
}

pick_python() {
    local candidate="${PYTHON:-}"
    if [[ -z "$candidate" ]]; then
        if command -v "python$REQUIRED_PYTHON" >/dev/null 2>&1; then
            candidate="python$REQUIRED_PYTHON"
        else
            candidate="python3"
        fi
    fi
    command -v "$candidate" >/dev/null 2>&1 || die "Python interpreter '$candidate' not found"
    local version
    version="$("$candidate" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
    [[ "$version" == "$REQUIRED_PYTHON" ]] \
        || die "'$candidate' is Python $version; Python $REQUIRED_PYTHON is required (set PYTHON=/path/to/python$REQUIRED_PYTHON)"
    echo "$candidate"
}

ensure_venv() {
    if [[ -x "$VENV_DIR/bin/python" ]]; then
        "$VENV_DIR/bin/python" -c 'import sys' 2>/dev/null \
            || die "$VENV_DIR exists but its python does not run; remove it (rm -rf $VENV_DIR) and retry"
        return 0
    fi
    local python
    python="$(pick_python)"
    # Debian ships venv/ensurepip separately, in python3.X-venv.
    if ! "$python" -c 'import ensurepip, venv' 2>/dev/null; then
        apt_install "python$REQUIRED_PYTHON-venv"
    fi
    log "creating virtual environment $VENV_DIR with $python"
    "$python" -m venv "$VENV_DIR"
    "$VENV_DIR/bin/python" -m pip install --disable-pip-version-check --upgrade pip
}

# Hash of every file that decides what pip installs into .venv.
install_inputs_hash() {
    (cd "$REPO_ROOT" && cat requirements*.txt setup.py setup.cfg package.xml | sha256sum | cut -d' ' -f1)
}

flowfeat_installed() {
    "$VENV_DIR/bin/python" -c 'import importlib.metadata as m; m.distribution("flowfeat_ros")' \
        2>/dev/null
}

ensure_python_packages() {
    local wanted
    wanted="$(install_inputs_hash)"
    if [[ -f "$STAMP_FILE" && "$(cat "$STAMP_FILE")" == "$wanted" ]] && flowfeat_installed; then
        log "Python packages up to date"
        return 0
    fi
    local pip=("$VENV_DIR/bin/python" -m pip --disable-pip-version-check)
    log "installing requirements.txt into $VENV_DIR"
    "${pip[@]}" install -r "$REPO_ROOT/requirements.txt"
    log "installing flowfeat_ros (editable) into $VENV_DIR"
    "${pip[@]}" install --no-deps --no-build-isolation --editable "$REPO_ROOT"
    echo "$wanted" > "$STAMP_FILE"
}

# Parallel runs in the same checkout wait for each other instead of racing pip.
if command -v flock >/dev/null 2>&1; then
    exec {lock_fd}>"$REPO_ROOT/.setup_env.lock"
    flock "$lock_fd"
fi
ensure_opencv_doc
ensure_venv
ensure_python_packages
log "ready: $VENV_DIR"
