"""``python -m flowfeat_core.train``: self-supervised FlowFeat training on bags, videos, images.

Multi-GPU / multi-node: ``torchrun --nproc_per_node N -m flowfeat_core.train ...``.
"""

from __future__ import annotations

import logging
import sys

from flowfeat_core.cli.errors import reports_user_errors
from flowfeat_core.training.config import parse_args
from flowfeat_core.training.distributed import shutdown_distributed


@reports_user_errors
def main(argv: list[str] | None = None) -> int:
    """Train; returns the process exit code (0 done, 1 bad input, 130 interrupted)."""
    config = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from flowfeat_core.training.trainer import Trainer

    trainer = Trainer(config)
    summary = trainer.train()
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
