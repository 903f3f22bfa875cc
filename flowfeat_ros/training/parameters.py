"""The trainer node's parameters (declared with descriptors; all read-only: restart to change)
and the loop settings they make."""

from __future__ import annotations

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

from flowfeat_core.continual.gates import GateThresholds
from flowfeat_core.continual.loop import LoopSettings
from flowfeat_core.continual.replay_store import StoreLimits
from flowfeat_core.continual.training_round import RoundSettings

MB = 1024 * 1024


def _number(description: str, low: float, high: float, integer: bool = False
            ) -> ParameterDescriptor:
    descriptor = ParameterDescriptor(description=description, read_only=True)
    if integer:
        descriptor.integer_range = [IntegerRange(from_value=int(low), to_value=int(high))]
    else:
        descriptor.floating_point_range = [FloatingPointRange(from_value=low, to_value=high)]
    return descriptor


def _text(description: str) -> ParameterDescriptor:
    return ParameterDescriptor(description=description, read_only=True)


PARAMETERS: dict[str, tuple[object, ParameterDescriptor]] = {
    "bags_dir": ("~/flowfeat_bags", _text("the recorder's output_dir (read only, never written)")),
    "work_dir": ("~/flowfeat/loop", _text("replay store, caches, rounds and TensorBoard logs")),
    "deployed": ("~/flowfeat/deployed.safetensors", _text(
        "the checkpoint the perception node serves; created from 'initial' when missing")),
    "initial": ("default", _text("model the deployed file starts as (anything load_model takes)")),
    "topic": ("", _text("image topic to train on ('' = each bag's topic with most frames)")),
    "settle_s": (10.0, _number("a closed bag counts once unchanged this long", 0.0, 3600.0)),
    "check_period_s": (30.0, _number("how often to look for finished bags", 0.1, 86400.0)),
    "min_new_bags": (4, _number("new training bags that start a round (0 = only ~/train_now)",
                                0, 10000, integer=True)),
    "heldout_fraction": (0.25, _number("share of bags held out, never trained on", 0.01, 0.99)),
    "recent_bags": (8, _number("newest training bags kept", 1, 10000, integer=True)),
    "older_bags": (8, _number("older training bags kept (uniform reservoir sample)", 0, 10000,
                              integer=True)),
    "heldout_bags": (8, _number("held-out bags kept (reservoir sample)", 1, 10000, integer=True)),
    "quota_mb": (4096.0, _number("disk quota of the kept bags and caches", 1.0, 1.0e9)),
    "keep_deployed": (3, _number("deployed models kept for rollback", 2, 1000, integer=True)),
    "steps": (300, _number("training steps per round", 1, 10**7, integer=True)),
    "batch_size": (4, _number("frame pairs per step", 1, 1024, integer=True)),
    "input_size": (128, _number("training crop side in pixels", 32, 2048, integer=True)),
    "max_side": (256, _number("frames are downscaled to this long side first", 32, 4096,
                              integer=True)),
    "lr": (1e-4, _number("peak learning rate (cosine schedule)", 1e-7, 1.0)),
    "rank_weight": (RoundSettings.rank_weight, _number(
        "coding-rate anti-collapse term weight (0 = off)", 0.0, 100.0)),
    "keep_weight": (RoundSettings.keep_weight, _number(
        "encoder-keeping term weight (features must linearly reconstruct the encoder's levels)",
        0.0, 100.0)),
    "heldout_pairs": (48, _number("held-out frame pairs both models are scored on", 1, 100000,
                                  integer=True)),
    "save_every": (50, _number("save resumable state every this many steps", 1, 10**7,
                               integer=True)),
    "device": ("cpu", _text("cpu, cuda or cuda:N (its own process, hence its own CUDA context)")),
    "cpu_threads": (1, _number("torch threads for training", 1, 256, integer=True)),
    "nice": (10, _number("raise this process's nice level by this much (0 = unchanged)", 0, 19,
                         integer=True)),
    "min_loss_gain": (GateThresholds.min_loss_gain, _number(
        "deploy only if the held-out loss drops by this fraction", 0.0, 0.99)),
    "max_epe_increase": (GateThresholds.max_epe_increase, _number(
        "allowed relative rise of the held-out flow EPE", 0.0, 10.0)),
    "min_effective_rank": (float(GateThresholds.min_effective_rank), _number(
        "refuse candidates whose features have a lower effective rank", 1.0, 4096.0)),
    "min_rank_ratio": (GateThresholds.min_rank_ratio, _number(
        "refuse below this share of the deployed model's effective rank", 0.0, 10.0)),
    "max_label_free_drop": (GateThresholds.max_label_free_drop, _number(
        "refuse if held-out propagation or stability on real frames falls by more than this",
        0.0, 1.0)),
    "perception_node": ("perception", _text(
        "the perception node kept on the deployed file (relative: in this node's namespace; "
        "'' = none)")),
    "max_perception_latency_ms": (250.0, _number(
        "pause training while perception's median latency exceeds this (0 = never)", 0.0, 1e6)),
    "confirm_timeout_s": (120.0, _number("wait this long for perception to load a deploy",
                                         1.0, 3600.0)),
}


def loop_settings(p: dict) -> LoopSettings:
    """The loop's settings from the parameter values (raises ValueError when inconsistent)."""
    return LoopSettings(
        settle_s=p["settle_s"], keep=p["keep_deployed"],
        limits=StoreLimits(recent=p["recent_bags"], older=p["older_bags"],
                           heldout=p["heldout_bags"], heldout_fraction=p["heldout_fraction"],
                           quota_bytes=int(p["quota_mb"] * MB)),
        round=RoundSettings(
            steps=p["steps"], batch_size=p["batch_size"], input_size=p["input_size"],
            max_side=p["max_side"], lr=p["lr"], rank_weight=p["rank_weight"],
            keep_weight=p["keep_weight"],
            heldout_pairs=p["heldout_pairs"], device=p["device"], save_every=p["save_every"],
            topic=p["topic"] or None, progress_bar=False,
            thresholds=GateThresholds(p["min_loss_gain"], p["max_epe_increase"],
                                      p["min_effective_rank"], p["min_rank_ratio"],
                                      p["max_label_free_drop"])))
