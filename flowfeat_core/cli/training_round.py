"""``flowfeat_round``: one round of the on-robot loop, by hand or from a timer.

    flowfeat_round --bags ~/flowfeat_bags --deployed ~/flowfeat/deployed.safetensors --work ~/flowfeat/rounds

Takes the finished bags under ``--bags`` (closed and settled) into the replay store under
``--work`` (a fixed fraction held out, never trained on), trains a candidate from the deployed
checkpoint on the kept training bags, scores candidate and deployed model on the held-out bags and
deploys the candidate only when it passes the gates (see flowfeat_core/continual/). The ROS
``trainer`` node runs the same loop. Rounds live in ``--work/round_NNNN``;
a round that was stopped (SIGINT/SIGTERM: state saved, exit 130) or killed resumes on the next
call. ``--deployed`` is created from ``--initial`` when it does not exist yet. Exit 0 whether the
candidate was deployed or refused; the printed decision says which and why.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flowfeat_core.cli.errors import reports_user_errors
from flowfeat_core.cli.stop_signals import StopSignals
from flowfeat_core.continual.gates import GateThresholds
from flowfeat_core.continual.training_round import RoundSettings


def parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(prog="flowfeat_round", description=__doc__.split("\n\n")[0])
    p.add_argument("--bags", type=Path, required=True, help="the recorder's output_dir")
    p.add_argument("--deployed", type=Path, required=True,
                   help="the deployed checkpoint (.safetensors) the perception node loads")
    p.add_argument("--work", type=Path, required=True, help="folder of the rounds")
    p.add_argument("--initial", default="default", help="model for a --deployed that does not exist")
    p.add_argument("--topic", help="image topic (default: the one with most frames)")
    p.add_argument("--heldout-fraction", type=float, default=0.25)
    p.add_argument("--settle-s", type=float, default=10.0, help="a bag counts once unchanged this long")
    p.add_argument("--recent", type=int, default=8, help="newest training bags kept")
    p.add_argument("--older", type=int, default=8,
                   help="older training bags kept (a uniform reservoir sample)")
    p.add_argument("--heldout", type=int, default=8, help="held-out bags kept (reservoir sample)")
    p.add_argument("--quota-mb", type=float, default=4096.0,
                   help="disk quota of the kept bags and caches under --work")
    p.add_argument("--keep", type=int, default=3, help="deployed models kept for rollback")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--input-size", type=int, default=128)
    p.add_argument("--max-side", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-4)
    round_defaults = RoundSettings()
    p.add_argument("--rank-weight", type=float, default=round_defaults.rank_weight)
    p.add_argument("--keep-weight", type=float, default=round_defaults.keep_weight)
    p.add_argument("--heldout-pairs", type=int, default=48)
    p.add_argument("--device", default="cpu")
    defaults = GateThresholds()
    p.add_argument("--min-loss-gain", type=float, default=defaults.min_loss_gain)
    p.add_argument("--max-epe-increase", type=float, default=defaults.max_epe_increase)
    p.add_argument("--min-effective-rank", type=float, default=defaults.min_effective_rank)
    p.add_argument("--min-rank-ratio", type=float, default=defaults.min_rank_ratio)
    p.add_argument("--max-label-free-drop", type=float, default=defaults.max_label_free_drop)
    return p


@reports_user_errors
def main(argv: list[str] | None = None) -> int:
    """Run one round; 0 when it finished (deployed or refused), 130 when stopped."""
    args = parser().parse_args(argv)
    thresholds = GateThresholds(args.min_loss_gain, args.max_epe_increase, args.min_effective_rank,
                                args.min_rank_ratio, args.max_label_free_drop)
    stop = StopSignals("flowfeat_round")
    stop.install()
    try:
        return _run(args, thresholds, stop)
    finally:
        stop.ignore_from_now_on()


def _run(args: argparse.Namespace, thresholds: GateThresholds, stop: StopSignals) -> int:
    from flowfeat_core.continual.loop import ContinualLoop, LoopSettings
    from flowfeat_core.continual.replay_store import StoreLimits

    settings = LoopSettings(
        settle_s=args.settle_s, keep=args.keep,
        limits=StoreLimits(recent=args.recent, older=args.older, heldout=args.heldout,
                           heldout_fraction=args.heldout_fraction,
                           quota_bytes=int(args.quota_mb * 1024**2)),
        round=RoundSettings(
            steps=args.steps, batch_size=args.batch_size, input_size=args.input_size,
            max_side=args.max_side, lr=args.lr, rank_weight=args.rank_weight,
            keep_weight=args.keep_weight,
            heldout_pairs=args.heldout_pairs, device=args.device, topic=args.topic,
            thresholds=thresholds))
    loop = ContinualLoop(args.bags, args.work, args.deployed, args.initial, settings)
    report = loop.take_in_bags()
    for name, reason in report.rejected.items():
        print(f"rejected bag {name}: {reason}", file=sys.stderr)
    reason = loop.blocker()
    if reason:
        raise ValueError(f"{args.work}: {reason}")
    repaired = loop.repair_deployed()
    if repaired:
        print(repaired)
    folder = loop.next_round()
    print(f"{folder.name}: training on {len(loop.store.train_bags())} bags, held-out "
          f"{len(loop.store.heldout_bags())} bags", flush=True)
    result = loop.run_round(should_stop=lambda: stop.requested)
    if result.decision is None:
        print(f"{folder.name}: stopped at step {result.steps}; run again to resume")
        return 130
    verdict = "deployed" if result.decision.passed else "refused: " + "; ".join(result.decision.failures)
    print(f"{folder.name}: {result.steps} steps in {result.train_seconds:.0f} s; "
          f"{result.decision.summary}; {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
