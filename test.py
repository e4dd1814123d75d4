"""Evaluate a checkpoint: ``accelerate launch test.py --config CFG --checkpoint DIR``."""

import sys

from acchooks.cli.test import main

if __name__ == "__main__":
    sys.exit(main())
