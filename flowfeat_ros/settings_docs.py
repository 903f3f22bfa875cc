"""The documentation's parameter tables, generated from the settings declarations.

    python -m flowfeat_ros.settings_docs          # rewrite the tables in docs/ and README.md
    python -m flowfeat_ros.settings_docs --check  # exit 1 when a table is stale

Each table sits between ``<!-- settings: <Name> -->`` and ``<!-- end settings -->`` in its file;
the test suite fails when one differs from what its declaration generates, so the docs can never
drift from the code (edit the declaration, then run this).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from flowfeat_core.settings import markdown_table
from flowfeat_ros.package_paths import SOURCE_ROOT
from flowfeat_ros.perception.parameters import PerceptionSettings
from flowfeat_ros.playback.settings import PlaybackSettings
from flowfeat_ros.recording.settings import RecorderSettings
from flowfeat_ros.training.parameters import TrainerSettings

#: Which declaration each documented table shows, by the name in its marker.
TABLES: dict[str, type] = {
    "PerceptionSettings": PerceptionSettings,
    "RecorderSettings": RecorderSettings,
    "PlaybackSettings": PlaybackSettings,
    "TrainerSettings": TrainerSettings,
}
DOCUMENTS = ("README.md", "docs/perception.md", "docs/recording.md")
BLOCK = re.compile(r"(<!-- settings: (\w+) -->\n)(.*?)(<!-- end settings -->)", re.DOTALL)


def regenerate(text: str) -> str:
    """``text`` with every settings table replaced by what its declaration generates."""
    def table(match: re.Match[str]) -> str:
        name = match.group(2)
        if name not in TABLES:
            raise ValueError(f"unknown settings table {name!r} (known: {sorted(TABLES)})")
        return match.group(1) + markdown_table(TABLES[name]) + match.group(4)

    return BLOCK.sub(table, text)


def stale_documents(root: Path = SOURCE_ROOT) -> list[str]:
    """The documents whose tables differ from their declarations."""
    return [name for name in DOCUMENTS
            if regenerate((root / name).read_text()) != (root / name).read_text()]


def documented_tables(root: Path = SOURCE_ROOT) -> set[str]:
    """The declarations that have a table somewhere in the documents."""
    return {match.group(2) for name in DOCUMENTS
            for match in BLOCK.finditer((root / name).read_text())}


def main(argv: list[str] | None = None) -> int:
    """Rewrite (or with --check, verify) the tables; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report stale tables")
    args = parser.parse_args(argv)
    stale = stale_documents()
    if args.check:
        for name in stale:
            print(f"{name}: settings table out of date; run python -m flowfeat_ros.settings_docs",
                  file=sys.stderr)
        return 1 if stale else 0
    for name in stale:
        path = SOURCE_ROOT / name
        path.write_text(regenerate(path.read_text()))
        print(f"updated {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
