"""``backend="auto"``: eager serves the first frame at once, the fast backend serves once a
background build agrees with eager on a frame of that size, and one that disagrees never serves;
compiled kernels are kept under $FLOWFEAT_HOME."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage import data as skimage_data

from flowfeat_core.hub.loading import load_model
from flowfeat_core.inference.aot_inductor import package_dir, package_path
from flowfeat_core.inference.auto_backend import AutoRunner, BackendPlan, fastest_backend
from flowfeat_core.inference.backends import (
    inductor_cache_dir,
    model_digest,
    onnxruntime_runner,
    use_inductor_cache,
)
from flowfeat_core.inference.device import native_bf16
from flowfeat_core.inference.numerics import TOLERANCE, relative_error
from flowfeat_core.inference.predictor import Predictor

BUILD_TIMEOUT_S = 900.0  # a cold compile of the default model takes 1-3 minutes on 2 cores


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + BUILD_TIMEOUT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def wait_for_backend(predictor: Predictor, backend: str) -> None:
    """Until ``backend`` serves; a refused build fails at once with its reason."""
    def serving() -> bool:
        status = predictor.backend_status()
        assert not status.detail.endswith("eager PyTorch serves"), status.detail
        return status.serving == backend

    wait_until(serving, backend)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return np.ascontiguousarray(skimage_data.astronaut())


@pytest.mark.slow
def test_auto_serves_eager_at_once_then_the_compiled_package_checked_on_the_frames_size(
        photo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A package cache of its own: other tests on this worker build packages of this size too.
    monkeypatch.setenv("FLOWFEAT_HOME", str(tmp_path))
    side = load_model("default").size_multiple * 4  # test_backends runs this size too
    eager = Predictor(load_model("default"), device="cpu", input_hw=(side, side))
    auto = Predictor(load_model("default"), device="cpu", input_hw=(side, side), backend="auto")
    want = eager.predict(photo)
    plan = fastest_backend(torch.device("cpu"), "fp32", "efficientnet_lite0")
    assert plan.backend == "aot-inductor"
    assert torch.equal(auto.predict(photo), want)  # the first frame: eager, no wait for a compile
    first = auto.backend_status()
    assert first.serving == "torch" and first.precision == "fp32"
    assert first.detail.startswith(f"building aot-inductor {plan.precision} for {side}x{side}")
    wait_for_backend(auto, "aot-inductor")
    assert "largest relative error against eager fp32" in auto.backend_status().detail
    assert auto.backend_status().precision == plan.precision
    got = auto.predict(photo)
    # compiled, and as close as the backend's own load check demands of its precision (bf16 where
    # the CPU computes it natively, as AVX512-BF16 and AMX machines do)
    assert not torch.equal(got, want)
    assert relative_error(got.float().numpy(), want.float().numpy()) <= TOLERANCE[plan.precision]

    # A restart loads the cached package instead of compiling again; another model has its own.
    (package,) = package_dir().glob(f"*-1x3x{side}x{side}-*.pt2")
    built = package.stat().st_mtime_ns
    again = Predictor(load_model("default"), device="cpu", input_hw=(side, side), backend="auto")
    again.predict(photo)
    wait_for_backend(again, "aot-inductor")
    assert package.stat().st_mtime_ns == built and len(list(package_dir().glob("*.pt2"))) == 1
    sample = torch.zeros(1, 3, side, side)
    model = load_model("default")
    assert package_path(model, "fp32", sample) != package_path(model.untrained_twin(seed=1),
                                                               "fp32", sample)


def test_a_fast_backend_that_disagrees_never_serves_and_says_why(tmp_path: Path) -> None:
    """A stale ONNX export under the model's own name (as a damaged cache would give)."""
    model = load_model("default").eval()
    onnxruntime_runner(model.untrained_twin(seed=3).eval(), torch.device("cpu"), "fp32",
                       tmp_path)(torch.zeros(1, 3, 64, 64))
    (stale,) = tmp_path.glob("flowfeat-*-64x64.onnx")
    stale.rename(tmp_path / f"flowfeat-{model_digest(model, 'fp32')}-64x64.onnx")
    runner = AutoRunner(model, torch.device("cpu"), "fp32", tmp_path,
                        plan=BackendPlan("onnxruntime", "fp32", "the test's choice"))
    images = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    eager = Predictor(model, device="cpu", channels_last=False).run(images)
    first = runner(images)
    wait_until(lambda: "disagrees" in runner.status().detail, "the refusal")
    status = runner.status()
    assert status.serving == "torch"
    assert "disagrees with eager PyTorch fp32 at 64x64" in status.detail
    assert status.detail.endswith("eager PyTorch serves")
    for got in (first, runner(images)):
        assert all(torch.equal(a, b) for a, b in zip(got, eager, strict=True))


def test_auto_computes_in_bf16_only_where_native_and_measured_harmless() -> None:
    """The default encoder's entry allows bf16 under auto (its table in README); a ViT's does
    not; a precision the user chose is kept."""
    cpu = torch.device("cpu")
    native = "bf16" if native_bf16(cpu) else "fp32"
    assert fastest_backend(cpu, "fp32", "efficientnet_lite0").precision == native
    assert fastest_backend(cpu, "fp32", "dinov2_vits14").precision == "fp32"
    assert fastest_backend(cpu, "bf16", "dinov2_vits14").precision == "bf16"


def test_compiled_kernels_go_under_flowfeat_home_unless_the_user_chose_a_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    monkeypatch.setenv("FLOWFEAT_HOME", str(tmp_path))
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", default_cache_dir())  # what importing sets
    use_inductor_cache()
    expected = tmp_path / "inductor" / f"torch-{torch.__version__}"
    assert inductor_cache_dir() == expected
    assert Path(torch._inductor.runtime.cache_dir_utils.cache_dir()) == expected
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    use_inductor_cache()
    assert Path(torch._inductor.runtime.cache_dir_utils.cache_dir()) == tmp_path / "mine"
