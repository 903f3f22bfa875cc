"""How every flowfeat_core program reports a user's mistake: one ``error: ...`` line, exit 1.

Bad data, bags, checkpoints, probes, values and files are the user's to fix, so they get a line
that names the problem, not a traceback. Usage errors stay argparse's (exit 2).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import ParamSpec

from flowfeat_core.data.errors import DataError
from flowfeat_core.hub.errors import CheckpointError, WeightsUnavailableError
from flowfeat_core.probes.io import ProbeError

USER_ERRORS = (DataError, CheckpointError, WeightsUnavailableError, ProbeError, ValueError, OSError)
P = ParamSpec("P")


def reports_user_errors(main: Callable[P, int]) -> Callable[P, int]:
    """Wrap a program's ``main``: a user error prints ``error: <message>`` and returns 1."""

    @functools.wraps(main)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> int:
        try:
            return main(*args, **kwargs)
        except USER_ERRORS as error:
            print(f"error: {error}", file=sys.stderr)
            return 1

    return wrapper
