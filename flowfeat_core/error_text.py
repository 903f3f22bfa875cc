"""One line about an exception from a third-party library (torch, exporters, compilers), whose
messages often run to pages: the first non-empty line, or the type's name when there is none."""

from __future__ import annotations


def first_line(error: BaseException) -> str:
    """The first non-empty line of ``str(error)``, else the exception type's name."""
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
