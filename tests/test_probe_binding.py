"""Probes bound to the features they were trained on: model fingerprints, channel checks and
the fingerprint a trained probe records (flowfeat_core.probes.binding)."""

from __future__ import annotations

from flowfeat_core.models.fingerprint import model_fingerprint
from flowfeat_core.models.flowfeat import FlowFeat
from flowfeat_core.probes.binding import MODEL_DIGEST, channel_problem, encoder_channels, trained_on
from flowfeat_core.probes.heads import Probe, ProbeSpec
from flowfeat_core.probes.io import load_probe, save_probe
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
