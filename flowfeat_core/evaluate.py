"""``python -m flowfeat_core.evaluate``, the documented command: runs ``flowfeat_core.cli.evaluate``."""

import sys

from flowfeat_core.cli.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
