"""``python -m gan3d.cli``: the same as the ``gan3d`` command."""

import sys

from gan3d.cli import main

if __name__ == "__main__":
    sys.exit(main())
