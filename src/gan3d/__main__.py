"""``python -m gan3d`` is the ``gan3d`` command; ``torchrun --nproc_per_node=N -m gan3d train ...``
starts it in N processes for data-parallel training."""

import sys

from gan3d.cli import main

if __name__ == "__main__":
    sys.exit(main())
