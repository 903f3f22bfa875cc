"""The distillation training loop: EMA teacher on view 1, trained decoder on view 2."""

from __future__ import annotations

import copy
import logging
import math
import os
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler
from tqdm import tqdm

from flowfeat_core.data.pairs import FramePairDataset
from flowfeat_core.data.sources import build_frame_sequences
from flowfeat_core.hub.checkpoint import save_checkpoint
from flowfeat_core.hub.loading import load_model
from flowfeat_core.inference.device import describe_machine, select_device
from flowfeat_core.inference.feature_stats import CollapseWatch, feature_stats
from flowfeat_core.inference.predictor import Predictor
from flowfeat_core.models.flowfeat import FlowFeat
from flowfeat_core.models.normalization import PixelNormalizer
from flowfeat_core.probes.real_yardstick import FAST_SUBSET, yardstick
from flowfeat_core.training.batches import to_views
from flowfeat_core.training.config import TrainConfig
from flowfeat_core.training.distillation import distillation_losses
from flowfeat_core.training.distributed import DistributedContext, init_distributed
from flowfeat_core.training.ema import EMA
from flowfeat_core.training.encoder_keeping import encoder_keeping_loss
from flowfeat_core.training.flow_pairs import DistillationViews
from flowfeat_core.training.rank_regularizer import coding_rate_loss
from flowfeat_core.training.schedule import learning_rate
from flowfeat_core.training.state import TrainingState, load_training_state, save_training_state
from flowfeat_core.training.visuals import features_to_rgb, flow_to_rgb

LOG = logging.getLogger(__name__)
STATE_FILE = "state.safetensors"
FINAL_CHECKPOINT = "flowfeat.safetensors"


@dataclass
class TrainSummary:
    """What a finished (or interrupted) run reports."""

    steps: int
    seconds: float
    steps_per_second: float
    final_loss: float
    checkpoint: Path
    interrupted: bool


def build_model(config: TrainConfig) -> FlowFeat:
    """The model to train: ``--init`` if given (guided from there on with ``--decoder-guidance``),
    else the embedded encoder with a fresh decoder; edge-aware smoothing as ``--decoder-edge-radius``
    asks."""
    if config.init:
        model = load_model(config.init)
        if config.decoder_guidance and not model.config.decoder_guidance:
            model = model.with_decoder_guidance()
    else:
        torch.manual_seed(config.seed)
        shape = {"decoder_guidance": config.decoder_guidance,
                 "decoder_upsample_last": config.decoder_upsample_last}
        if config.decoder_head_width is not None:
            shape["decoder_head_width"] = config.decoder_head_width
        model = FlowFeat.embedded_default(**shape)
    radius = config.decoder_edge_radius
    if radius is None or radius == model.config.decoder_edge_radius:
        return model
    return model.with_edge_filter(radius)


class Trainer:
    """Runs :class:`TrainConfig`; one instance per process (torchrun starts several)."""

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.device = select_device(config.device)
        if self.device.type == "cuda" and "LOCAL_RANK" in os.environ:
            self.device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        self.context: DistributedContext = init_distributed(self.device)
        self.model = build_model(config).to(self.device)
        self.model.encoder.eval()
        self.model.decoder.train()
        self.ema = EMA(self.model.decoder, config.ema_decay)
        self.student = (
            # static_graph: the coarsest fusion block never uses its lateral unit (kept for the
            # released key layout), which plain DDP reports as parameters without gradients.
            DistributedDataParallel(self.model.decoder, static_graph=True)
            if self.context.enabled
            else self.model.decoder
        )
        self.optimizer = torch.optim.Adam(
            self.model.decoder.parameters(), lr=config.lr, betas=(0.9, 0.999), weight_decay=0.0
        )
        self.use_amp = config.amp and self.device.type == "cuda"
        self.step = 0
        self.epoch = 0
        self.earlier_seconds = 0.0  # training wall time of the runs this one resumes
        self.started = time.perf_counter()
        self.dataset = self._dataset()
        self.writer = self._writer()
        self.collapse_watch = CollapseWatch("training (student features of view 2)")
        if config.resume:
            self._resume()

    def _dataset(self) -> DistillationViews:
        sequences = build_frame_sequences(
            bags=self.config.bags,
            videos=self.config.videos,
            images=self.config.images,
            topic=self.config.topic,
            max_side=self.config.max_side,
            cache_dir=self.config.frame_cache,
        )
        pairs = FramePairDataset(sequences, gap=self.config.gap, seed=self.config.seed)
        return DistillationViews(
            pairs,
            self.config.input_size,
            self.config.teacher,
            self.config.flow_cache_dir,
            self.config.crop_scale,
        )

    def _writer(self):
        if not self.context.is_main:
            return None
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(log_dir=str(self.config.out / "tensorboard"))

    def _batches(self) -> Iterator[dict[str, torch.Tensor]]:
        """Endless batches; every pass over the data is one epoch with fresh time flips."""
        while True:
            self.dataset.set_epoch(self.epoch)
            if self.context.enabled:
                sampler = DistributedSampler(self.dataset, seed=self.config.seed, drop_last=True)
                sampler.set_epoch(self.epoch)
            else:
                sampler = RandomSampler(
                    self.dataset, generator=torch.Generator().manual_seed(self.config.seed + self.epoch)
                )
            loader = DataLoader(
                self.dataset,
                batch_size=self.config.batch_size,
                sampler=sampler,
                num_workers=self.config.workers,
                drop_last=len(self.dataset) >= self.config.batch_size,
                pin_memory=self.device.type == "cuda",
                persistent_workers=False,
            )
            yield from loader
            self.epoch += 1

    def _losses(self, batch: dict[str, torch.Tensor]):
        views = to_views(batch, self.device, self.model.config.mean, self.model.config.std)
        count = views.image1.shape[0]
        size_hw = (self.config.input_size, self.config.input_size)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_amp):
            with torch.no_grad():
                multiscale, _ = self.model.encode(torch.cat([views.image1, views.image2]))
                teacher = self.model.decode([m[:count] for m in multiscale], views.image1, self.ema.module)
            student = self.model.decode([m[count:] for m in multiscale], views.image2, self.student)
        losses = distillation_losses(teacher, student, views.flow1, views.flow2)
        if self.config.rank_weight > 0:
            rank = coding_rate_loss(student)
            losses = replace(losses, total=losses.total + self.config.rank_weight * rank, rank=rank)
        if self.config.keep_weight > 0:
            with torch.no_grad():
                kept = self.model.hypercolumn([m[count:] for m in multiscale], size_hw)
            keep = encoder_keeping_loss(student, kept, directions=self.config.keep_directions)
            losses = replace(losses, total=losses.total + self.config.keep_weight * keep, keep=keep)
        return losses, views, student

    def train(self, should_stop: Callable[[], bool] = lambda: False) -> TrainSummary:
        """Run until ``config.steps`` or until ``should_stop()`` (polled every step; the CLI
        wires SIGINT/SIGTERM to it) or Ctrl-C; a stop saves a checkpoint and resumable state."""
        config = self.config
        batches = self._batches()
        progress = tqdm(
            total=config.steps, initial=self.step, desc="distill",
            disable=not (self.context.is_main and config.progress_bar),
        )
        started, start_step = time.perf_counter(), self.step
        self.started = started
        recent: list[float] = []
        interrupted = False
        try:
            while self.step < config.steps and not should_stop():
                self.optimizer.zero_grad(set_to_none=True)
                self._set_learning_rate()
                step_losses = []
                for _ in range(config.accumulate):
                    losses, views, student = self._losses(next(batches))
                    if not math.isfinite(losses.total.item()):
                        raise FloatingPointError(f"non-finite loss at step {self.step}")
                    (losses.total / config.accumulate).backward()
                    step_losses.append(losses)
                self.optimizer.step()
                self.step += 1
                if self.step % config.ema_every == 0:
                    self.ema.update(self.model.decoder)
                loss = statistics.fmean(item.total.item() for item in step_losses)
                recent = [*recent, loss][-config.log_every :]
                progress.update(1)
                progress.set_postfix(loss=f"{statistics.fmean(recent):.4f}", epoch=self.epoch)
                self._log(step_losses[-1], views, student)
                if self.context.is_main and self.step % config.save_every == 0:
                    self.save(self.config.out / "checkpoints" / f"step_{self.step:07d}.safetensors")
        except KeyboardInterrupt:
            interrupted = True
            LOG.warning("interrupted at step %d; saving", self.step)
        finally:
            progress.close()
        if self.step < config.steps and not interrupted:  # the loop ended on should_stop()
            interrupted = True
            LOG.warning("stop signal at step %d; saving", self.step)
        seconds = time.perf_counter() - started
        final = self.config.out / FINAL_CHECKPOINT
        if self.context.is_main:
            self.save(final)
            if self.writer:
                self.writer.close()
        done = self.step - start_step
        return TrainSummary(
            steps=self.step,
            seconds=seconds,
            steps_per_second=done / seconds if seconds > 0 else 0.0,
            final_loss=statistics.fmean(recent) if recent else float("nan"),
            checkpoint=final,
            interrupted=interrupted,
        )

    def _set_learning_rate(self) -> None:
        config = self.config
        lr = learning_rate(config.lr, self.step, config.steps, config.lr_schedule, config.warmup_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def _log(self, losses, views, student: torch.Tensor) -> None:
        if not self.writer:
            return
        if self.step % self.config.log_every == 0:
            stats = feature_stats(student[0])
            self.collapse_watch.update(stats)
            for name, value in stats.to_dict().items():
                self.writer.add_scalar(f"features/{name}", value, self.step)
            self.writer.add_scalar("loss/total", losses.total.item(), self.step)
            self.writer.add_scalar("loss/flow_l1", losses.flow_l1.item(), self.step)
            self.writer.add_scalar("loss/boundary", losses.boundary.item(), self.step)
            if losses.rank is not None:
                self.writer.add_scalar("loss/rank", losses.rank.item(), self.step)
            if losses.keep is not None:
                self.writer.add_scalar("loss/keep", losses.keep.item(), self.step)
            self.writer.add_scalar("train/epoch", self.epoch, self.step)
            self.writer.add_scalar("train/lr", self.optimizer.param_groups[0]["lr"], self.step)
        if self.config.real_check_every and self.step % self.config.real_check_every == 0:
            for name, value in self.real_check().items():
                self.writer.add_scalar(f"real/{name}", value, self.step)
        if self.step % self.config.image_every == 0:
            normalizer = PixelNormalizer(self.model.config.mean, self.model.config.std, views.image2.device)
            frame = normalizer.to_uint8(views.image2[:1])[0].permute(1, 2, 0).cpu()
            scale = float(views.flow2[0].norm(dim=0).quantile(0.99)) or 1.0
            pictures = {
                "frame": frame.numpy(),
                "features_pca": features_to_rgb(student[0].detach()),
                "flow_teacher": flow_to_rgb(views.flow2[0], scale),
                "flow_predicted": flow_to_rgb(losses.predicted_flow[0].detach(), scale),
            }
            for name, picture in pictures.items():
                self.writer.add_image(f"view2/{name}", picture, self.step, dataformats="HWC")

    @torch.no_grad()
    def real_check(self) -> dict[str, float]:
        """The real-image yardstick's fast subset (tune split) on the EMA decoder's features: a
        real-image signal during training, next to the loss, which can fall while real quality
        does too."""
        twin = copy.deepcopy(self.model).eval()  # a copy, not a new model: no draw from torch's RNG
        twin.decoder.load_state_dict(self.ema.module.state_dict())
        predictor = Predictor(twin, device=self.device)
        report = yardstick(lambda rgb: {"flowfeat": predictor.predict(rgb).float().cpu()}, "tune",
                           **FAST_SUBSET)
        return report["flowfeat"]

    def provenance(self) -> dict:
        """Where the weights come from (stored in checkpoints)."""
        return {
            "method": "motion-profile distillation",
            "teacher_flow": self.config.teacher,
            "steps": self.step,
            "init": self.config.init or "embedded encoder, fresh decoder",
            "data": {"bags": self.config.bags, "videos": self.config.videos, "images": self.config.images},
            "train_config": self.config.to_dict(),
            "world_size": self.context.world_size,
            "wall_seconds": round(self.train_seconds(), 1),
            "machine": describe_machine(self.device),
            "saved": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }

    def train_seconds(self) -> float:
        """Wall time spent training so far, over every resumed run."""
        return self.earlier_seconds + time.perf_counter() - self.started

    def save(self, checkpoint: Path) -> None:
        """Write a loadable model checkpoint and the resumable state next to the run."""
        save_checkpoint(checkpoint, self.model, self.provenance())
        save_training_state(
            self.config.out / STATE_FILE,
            TrainingState(
                decoder=self.model.decoder.state_dict(),
                ema_decoder=self.ema.module.state_dict(),
                optimizer=self.optimizer.state_dict(),
                step=self.step,
                epoch=self.epoch,
                config=self.config.to_dict(),
                train_seconds=self.train_seconds(),
            ),
        )

    def _resume(self) -> None:
        path = self.config.out / STATE_FILE
        if not path.is_file():
            raise FileNotFoundError(f"--resume: no training state at {path}")
        state = load_training_state(path)
        self.model.decoder.load_state_dict(state.decoder)
        self.ema.module.load_state_dict(state.ema_decoder)
        self.optimizer.load_state_dict(state.optimizer)
        self.step, self.epoch = state.step, state.epoch
        self.earlier_seconds = state.train_seconds
        LOG.info("resumed from %s at step %d", path, self.step)
