"""``python -m flowfeat_core.synthetic``, the documented command: runs ``flowfeat_core.cli.synthetic``."""

import sys

from flowfeat_core.cli.synthetic import main

if __name__ == "__main__":
    sys.exit(main())
