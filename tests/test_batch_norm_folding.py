"""Batch norms folded into their convolutions for serving: the default model's encoder loses every
batch norm, its features stay those of the model, the model itself is untouched, and a network
where folding would change the result is served as it is."""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import nn

from flowfeat_core.hub.loading import load_model
from flowfeat_core.inference.backends import torch_runner
from flowfeat_core.inference.batch_norm_folding import conv_batch_norm_pairs, fold_batch_norms
from flowfeat_core.inference.predictor import Predictor


def _batch_norms(model: nn.Module) -> int:
    return sum(isinstance(module, nn.BatchNorm2d) for module in model.modules())


def test_the_default_serves_without_batch_norms_and_the_same_features() -> None:
    model = load_model("default").eval()
    norms = _batch_norms(model)
    assert norms > 0
    image = torch.randn(1, 3, 96, 128, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want_encoder, want_dense = model(image)
    folded = fold_batch_norms(model)
    assert folded is not model and _batch_norms(folded) == 0
    assert _batch_norms(model) == norms  # the model (and so its checkpoints) keeps them
    got_encoder, got_dense = torch_runner(model, torch.device("cpu"), "fp32")(image)
    for want, got in ((want_encoder, got_encoder), (want_dense, got_dense)):
        assert float((got - want).abs().max() / want.abs().max()) < 1e-5
    # and the Predictor's eager features are the unfolded model's, on a real-sized frame
    photo = np.random.default_rng(2).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    predictor = Predictor(model, device="cpu", input_hw=(96, 128))
    with torch.no_grad():
        reference = model(predictor.preprocess(photo))[1].permute(0, 2, 3, 1).numpy()
    served = predictor.predict(photo, as_numpy=True)
    assert np.abs(served - reference).max() < 1e-5 * np.abs(reference).max()


class _PreNormResidual(nn.Module):
    """conv -> batch norm, plus the conv's output read a second time: folding would change it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.norm = nn.BatchNorm2d(4)
        self.second = nn.Conv2d(3, 4, 1)
        self.second_norm = nn.BatchNorm2d(4)
        with torch.no_grad():
            for norm in (self.norm, self.second_norm):
                norm.running_mean.uniform_(-1, 1)
                norm.running_var.uniform_(0.5, 2.0)
                norm.weight.uniform_(0.5, 2.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.conv(x)
        return self.norm(hidden) + hidden + self.second_norm(self.second(x))


class _Pairs(_PreNormResidual):
    """The same layers, each conv read by its batch norm only: both pairs fold."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x)) + self.second_norm(self.second(x))


def test_pairs_follow_the_data_and_a_changed_result_is_refused(caplog) -> None:
    model = _PreNormResidual().eval()
    example = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    pairs, output = conv_batch_norm_pairs(model, example)
    assert pairs == [("conv", "norm"), ("second", "second_norm")]
    assert torch.equal(output, model(example))
    with caplog.at_level(logging.WARNING):
        assert fold_batch_norms(model, example) is model
    assert "not folded" in caplog.text
    model = _Pairs().eval()
    folded = fold_batch_norms(model, example)
    assert folded is not model and _batch_norms(folded) == 0
    assert torch.allclose(folded(example), model(example), atol=1e-5)


def test_a_training_model_is_not_folded() -> None:
    model = _PreNormResidual().train()
    assert fold_batch_norms(model, torch.zeros(1, 3, 8, 8)) is model
