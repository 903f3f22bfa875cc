"""Probes bound to the features they were trained on: model fingerprints, channel checks, the
fingerprint a trained probe records (flowfeat_core.probes.binding), and probes attached to the
checkpoint of their model (what the on-robot loop deploys)."""

from __future__ import annotations

import pytest

from flowfeat_core.continual.deployment import Deployment, DeploymentError
from flowfeat_core.hub.checkpoint import (
    Attachment,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
    save_with_attachments,
)
from flowfeat_core.hub.loading import load_model_with_attachments
from flowfeat_core.models.fingerprint import model_fingerprint
from flowfeat_core.models.flowfeat import FlowFeat
from flowfeat_core.probes.binding import MODEL_DIGEST, channel_problem, encoder_channels, trained_on
from flowfeat_core.probes.heads import Probe, ProbeSpec
from flowfeat_core.probes.io import attach_probes, attached_probe, load_probe, save_probe
from flowfeat_core.probes.workflow import UNTRAINED_EMBEDDED, resolve_model


def test_the_fingerprint_follows_configuration_and_weights():
    model = FlowFeat.embedded_default()
    same = FlowFeat.embedded_default()
    same.load_state_dict(model.state_dict())
    assert model_fingerprint(model) == model_fingerprint(same)
    other = model.untrained_twin(seed=1)
    assert model_fingerprint(other) != model_fingerprint(model)
    narrow = FlowFeat.embedded_default(fdim=64)
    assert model_fingerprint(narrow) != model_fingerprint(model)


def test_channel_problems_name_the_counts():
    model = FlowFeat.embedded_default()
    fits = Probe(ProbeSpec("depth", "linear", 128, encoder_channels(model)))
    assert channel_problem(fits, model) is None
    dense = Probe(ProbeSpec("depth", "linear", 64, 0))
    assert channel_problem(dense, model) == "expects 64 dense feature channels; the model gives 128"
    coarse = Probe(ProbeSpec("depth", "linear", 0, 384))
    assert channel_problem(coarse, model) == "expects 384 encoder channels; the model gives 320"


def test_a_probe_records_its_model_and_knows_it_again(tmp_path):
    model, info = resolve_model(UNTRAINED_EMBEDDED)
    assert info[MODEL_DIGEST] == model_fingerprint(model)
    probe = Probe(ProbeSpec("depth", "linear", 128, 0))
    assert trained_on(probe, info[MODEL_DIGEST]) is None  # nothing recorded: cannot tell
    probe.model_info = info
    loaded = load_probe(save_probe(tmp_path / "p.safetensors", probe))
    assert trained_on(loaded, model_fingerprint(model)) is True
    assert trained_on(loaded, model_fingerprint(model.untrained_twin(seed=3))) is False


def _bound_probe(model: FlowFeat, metric: bool) -> Probe:
    probe = Probe(ProbeSpec("depth", "linear", 128, 0, metric))
    probe.model_info = {MODEL_DIGEST: model_fingerprint(model)}
    return probe


def test_a_probe_attached_to_a_checkpoint_travels_and_rolls_back_with_its_model(tmp_path):
    """The loop's deploy unit: one file holding a model and the probe trained on it. Loading the
    model ignores the attachment; a rollback brings back the older model with its own probe."""
    first, second = FlowFeat.embedded_default(), FlowFeat.embedded_default().untrained_twin(seed=2)
    files = []
    for index, (model, metric) in enumerate(((first, False), (second, True))):
        plain = save_checkpoint(tmp_path / f"model{index}.safetensors", model)
        files.append(attach_probes(plain, {"depth": _bound_probe(model, metric)},
                                   tmp_path / f"bundle{index}.safetensors"))
    loaded, attachments = load_model_with_attachments(files[1])
    assert model_fingerprint(loaded) == model_fingerprint(second)
    probe = attached_probe(attachments, "depth", "bundle1")
    assert probe.metric and trained_on(probe, model_fingerprint(loaded)) is True
    assert attached_probe(attachments, "segmentation", "bundle1") is None
    assert model_fingerprint(load_checkpoint(files[1])) == model_fingerprint(second)

    deployed = tmp_path / "deployed.safetensors"
    deployment = Deployment(deployed)
    deployment.deploy(files[0])
    deployment.deploy(files[1])
    deployment.rollback()
    model, attachments = load_model_with_attachments(deployed)
    back = attached_probe(attachments, "depth", str(deployed))
    assert model_fingerprint(model) == model_fingerprint(first) and not back.metric
    assert trained_on(back, model_fingerprint(model)) is True


def test_a_checkpoint_whose_attached_probe_is_damaged_is_never_deployed(tmp_path):
    model = FlowFeat.embedded_default()
    plain = save_checkpoint(tmp_path / "model.safetensors", model)
    bundle = attach_probes(plain, {"depth": _bound_probe(model, True)}, tmp_path / "b.safetensors")
    contents = read_checkpoint(bundle)
    damaged = {name: Attachment({k: v[..., :1] for k, v in a.tensors.items()}, a.metadata)
               for name, a in contents.attachments().items()}
    save_with_attachments(tmp_path / "damaged.safetensors", contents, damaged)
    deployed = save_checkpoint(tmp_path / "deployed.safetensors", model)
    with pytest.raises(DeploymentError, match=r"the depth probe attached to .*tensors do not "
                                              r"match"):
        Deployment(deployed).deploy(tmp_path / "damaged.safetensors")
