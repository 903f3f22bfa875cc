"""``python -m flowfeat_core.train``: self-supervised FlowFeat training on bags, videos, images.

Multi-GPU / multi-node: ``torchrun --nproc_per_node N -m flowfeat_core.train ...``.
"""

from __future__ import annotations

import logging
import sys

from flowfeat_core.cli.errors import reports_user_errors
from flowfeat_core.process.stop_signals import StopSignals
from flowfeat_core.training.config import TrainConfig, parse_args
from flowfeat_core.training.distributed import shutdown_distributed


@reports_user_errors
def main(argv: list[str] | None = None) -> int:
    """Train; returns the process exit code (0 done or nothing to do, 1 bad input, 130 stopped
    by SIGINT/SIGTERM after saving the checkpoint and resumable state)."""
    stop = StopSignals("flowfeat_train")
    stop.install()
    try:
        return _train(parse_args(argv), stop)
    finally:
        stop.ignore_from_now_on()


def _train(config: TrainConfig, stop: StopSignals) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from flowfeat_core.training.trainer import Trainer

    trainer = Trainer(config)
    if trainer.step >= config.steps:
        print(f"nothing to do: the resumed state is at step {trainer.step} and --steps is "
              f"{config.steps}; raise --steps to train further")
        shutdown_distributed(trainer.context)
        return 0
    summary = trainer.train(should_stop=lambda: stop.requested)
    if trainer.context.is_main:
        print(
            f"{'interrupted' if summary.interrupted else 'finished'}: {summary.steps} steps in "
            f"{summary.seconds:.1f} s ({summary.steps_per_second:.2f} steps/s), "
            f"loss {summary.final_loss:.4f}, {len(trainer.dataset)} pairs; "
            f"checkpoint {summary.checkpoint}"
        )
    shutdown_distributed(trainer.context)
    return 130 if summary.interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
