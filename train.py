"""Train with acchooks: ``accelerate launch train.py --config configs/quickstart.py``."""

import sys

from acchooks.cli.train import main

if __name__ == "__main__":
    sys.exit(main())
