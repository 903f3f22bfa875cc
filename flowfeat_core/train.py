"""``python -m flowfeat_core.train``, the documented command: runs ``flowfeat_core.cli.train``."""

import sys

from flowfeat_core.cli.train import main

if __name__ == "__main__":
    sys.exit(main())
