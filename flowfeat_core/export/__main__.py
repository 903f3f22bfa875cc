"""``python -m flowfeat_core.export``: the same program as ``flowfeat_export``."""

import sys

from flowfeat_core.cli.export import main

if __name__ == "__main__":
    sys.exit(main())
