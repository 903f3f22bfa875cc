"""Where flowfeat keeps what it downloads or builds for a user: ``$FLOWFEAT_HOME``."""

from __future__ import annotations

import os
from pathlib import Path


def flowfeat_home() -> Path:
    """``$FLOWFEAT_HOME``, else ``~/.cache/flowfeat``: released weights and built backends."""
    return Path(os.environ.get("FLOWFEAT_HOME", Path.home() / ".cache" / "flowfeat")).expanduser()
