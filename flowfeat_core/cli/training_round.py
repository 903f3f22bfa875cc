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
from flowfeat_core.continual.parameters import LoopParameters
from flowfeat_core.process.stop_signals import StopSignals
from flowfeat_core.settings import add_arguments, from_arguments


def parser() -> argparse.ArgumentParser:
    """The command line: one option per setting of LoopParameters."""
    p = argparse.ArgumentParser(prog="flowfeat_round", description=__doc__.split("\n\n")[0])
    add_arguments(p, LoopParameters)
    return p


@reports_user_errors
def main(argv: list[str] | None = None) -> int:
    """Run one round; 0 when it finished (deployed or refused), 130 when stopped."""
    params = from_arguments(LoopParameters, parser().parse_args(argv))
    stop = StopSignals("flowfeat_round")
    stop.install()
    try:
        return _run(params, stop)
    finally:
        stop.ignore_from_now_on()


def _run(params: LoopParameters, stop: StopSignals) -> int:
    from flowfeat_core.continual.loop import ContinualLoop

    settings = params.loop_settings(progress_bar=True)
    loop = ContinualLoop(Path(params.bags_dir), Path(params.work_dir), Path(params.deployed),
                         params.initial, settings)
    report = loop.take_in_bags()
    for name, reason in report.rejected.items():
        print(f"rejected bag {name}: {reason}", file=sys.stderr)
    reason = loop.blocker()
    if reason:
        raise ValueError(f"{params.work_dir}: {reason}")
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
    print(f"{folder.name}: {result.depth.describe()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
