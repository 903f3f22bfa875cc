"""``python -m flowfeat_core.probe``, the documented command: runs ``flowfeat_core.cli.probe``."""

import sys

from flowfeat_core.cli.probe import main

if __name__ == "__main__":
    sys.exit(main())
