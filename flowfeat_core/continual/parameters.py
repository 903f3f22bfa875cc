"""Every setting of the on-robot loop, declared once (see flowfeat_core.settings): the trainer
node's parameters, ``flowfeat_round``'s options and config/trainer.yaml derive from
:class:`LoopParameters`, and :meth:`LoopParameters.loop_settings` is the one builder of the
loop's settings objects. The defaults are those of the objects they build."""

from __future__ import annotations

from dataclasses import dataclass

from flowfeat_core.continual.depth_step import DepthStepSettings
from flowfeat_core.continual.gates import GateThresholds
from flowfeat_core.continual.loop import LoopSettings
from flowfeat_core.continual.replay_store import StoreLimits
from flowfeat_core.continual.training_round import RoundSettings
from flowfeat_core.probes.heads import HEADS
from flowfeat_core.settings import setting

MB = 1024 * 1024


@dataclass(frozen=True)
class LoopParameters:
    """Folders, bag selection, round budget and deployment gates (all fixed while running)."""

    bags_dir: str = setting("~/flowfeat_bags", "the recorder's output_dir (read only, never "
                            "written)", read_only=True, flag="--bags", required_on_cli=True)
    work_dir: str = setting("~/flowfeat/loop", "replay store, caches, rounds and TensorBoard "
                            "logs", read_only=True, flag="--work", required_on_cli=True)
    deployed: str = setting("~/flowfeat/deployed.safetensors", "the checkpoint the perception "
                            "node serves; created from 'initial' when missing", read_only=True,
                            required_on_cli=True)
    initial: str = setting("default", "model the deployed file starts as (anything load_model "
                           "takes)", read_only=True)
    topic: str = setting("", "image topic to train on ('' = each bag's topic with most frames)",
                         read_only=True)
    settle_s: float = setting(LoopSettings.settle_s, "a closed bag counts once unchanged this "
                              "long", low=0.0, high=3600.0, read_only=True)
    heldout_fraction: float = setting(StoreLimits.heldout_fraction, "share of bags held out, "
                                      "never trained on", low=0.01, high=0.99, read_only=True)
    recent_bags: int = setting(StoreLimits.recent, "newest training bags kept", low=1,
                               high=10000, read_only=True, flag="--recent")
    older_bags: int = setting(StoreLimits.older, "older training bags kept (uniform reservoir "
                              "sample)", low=0, high=10000, read_only=True, flag="--older")
    heldout_bags: int = setting(StoreLimits.heldout, "held-out bags kept (reservoir sample)",
                                low=1, high=10000, read_only=True, flag="--heldout")
    quota_mb: float = setting(StoreLimits.quota_bytes / MB, "disk quota of the kept bags and "
                              "caches", low=1.0, high=1.0e9, read_only=True)
    keep_deployed: int = setting(LoopSettings.keep, "deployed models kept for rollback", low=2,
                                 high=1000, read_only=True, flag="--keep")
    steps: int = setting(RoundSettings.steps, "training steps per round", low=1, high=10**7,
                         read_only=True)
    batch_size: int = setting(RoundSettings.batch_size, "frame pairs per step", low=1,
                              high=1024, read_only=True)
    input_size: int = setting(RoundSettings.input_size, "training crop side in pixels", low=32,
                              high=2048, read_only=True)
    max_side: int = setting(RoundSettings.max_side, "frames are downscaled to this long side "
                            "first", low=32, high=4096, read_only=True)
    lr: float = setting(RoundSettings.lr, "peak learning rate (cosine schedule)", low=1e-7,
                        high=1.0, read_only=True)
    rank_weight: float = setting(RoundSettings.rank_weight, "coding-rate anti-collapse term "
                                 "weight (0 = off)", low=0.0, high=100.0, read_only=True)
    keep_weight: float = setting(RoundSettings.keep_weight, "encoder-keeping term weight "
                                 "(features must linearly reconstruct the encoder's levels)",
                                 low=0.0, high=100.0, read_only=True)
    keep_directions: int = setting(RoundSettings.keep_directions, "the encoder-keeping term "
                                   "weighs this many principal directions of the encoder's levels "
                                   "equally (0 = by their variance)", low=0, high=4096,
                                   read_only=True)
    heldout_pairs: int = setting(RoundSettings.heldout_pairs, "held-out frame pairs both models "
                                 "are scored on", low=1, high=100000, read_only=True)
    save_every: int = setting(RoundSettings.save_every, "save resumable state every this many "
                              "steps", low=1, high=10**7, read_only=True)
    device: str = setting(RoundSettings.device, "cpu, cuda or cuda:N", read_only=True)
    min_loss_gain: float = setting(GateThresholds.min_loss_gain, "deploy only if the held-out "
                                   "loss drops by this fraction", low=0.0, high=0.99,
                                   read_only=True)
    max_epe_increase: float = setting(GateThresholds.max_epe_increase, "allowed relative rise "
                                      "of the held-out flow EPE", low=0.0, high=10.0,
                                      read_only=True)
    min_effective_rank: float = setting(float(GateThresholds.min_effective_rank), "refuse "
                                        "candidates whose features have a lower effective rank",
                                        low=1.0, high=4096.0, read_only=True)
    min_rank_ratio: float = setting(GateThresholds.min_rank_ratio, "refuse below this share of "
                                    "the deployed model's effective rank", low=0.0, high=10.0,
                                    read_only=True)
    max_label_free_drop: float = setting(GateThresholds.max_label_free_drop, "refuse if "
                                         "held-out propagation or stability on real frames falls "
                                         "by more than this", low=0.0, high=1.0, read_only=True)
    depth_probe: bool = setting(DepthStepSettings.enabled, "fit a depth probe from the bags' own "
                                "motion for each candidate; deployed attached to it, and gated",
                                read_only=True)
    depth_probe_head: str = setting(DepthStepSettings.head, "the depth probe's head: linear "
                                    "(fast), mlp, or conv (sees the pixel's neighbourhood: "
                                    "better metric depth, minutes more per round)",
                                    choices=HEADS, read_only=True)
    depth_probe_context: bool = setting(DepthStepSettings.context, "a linear or mlp depth probe "
                                        "also reads the image's mean feature and the pixel's "
                                        "position (conv always does); overfits on few frames",
                                        read_only=True)
    depth_frames_per_bag: int = setting(DepthStepSettings.frames_per_bag, "depth-labelled "
                                        "frames per bag at most", low=1, high=10000,
                                        read_only=True)
    max_depth_error_rise: float = setting(GateThresholds.max_depth_error_rise, "refuse if the "
                                          "candidate's depth probe has a held-out AbsRel higher "
                                          "than the deployed model's by more than this fraction",
                                          low=0.0, high=10.0, read_only=True)

    def loop_settings(self, progress_bar: bool) -> LoopSettings:
        """The loop's settings objects (raises ValueError when inconsistent)."""
        return LoopSettings(
            settle_s=self.settle_s, keep=self.keep_deployed,
            limits=StoreLimits(recent=self.recent_bags, older=self.older_bags,
                               heldout=self.heldout_bags, heldout_fraction=self.heldout_fraction,
                               quota_bytes=int(self.quota_mb * MB)),
            round=RoundSettings(
                steps=self.steps, batch_size=self.batch_size, input_size=self.input_size,
                max_side=self.max_side, lr=self.lr, rank_weight=self.rank_weight,
                keep_weight=self.keep_weight, keep_directions=self.keep_directions,
                heldout_pairs=self.heldout_pairs,
                device=self.device, save_every=self.save_every, topic=self.topic or None,
                progress_bar=progress_bar,
                thresholds=GateThresholds(self.min_loss_gain, self.max_epe_increase,
                                          self.min_effective_rank, self.min_rank_ratio,
                                          self.max_label_free_drop, self.max_depth_error_rise),
                depth=DepthStepSettings(enabled=self.depth_probe, head=self.depth_probe_head,
                                        context=self.depth_probe_context,
                                        frames_per_bag=self.depth_frames_per_bag)))
