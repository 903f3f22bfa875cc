"""``python -m flowfeat_core.bench``, the documented command: runs ``flowfeat_core.cli.bench``."""

import sys

from flowfeat_core.cli.bench import main

if __name__ == "__main__":
    sys.exit(main())
