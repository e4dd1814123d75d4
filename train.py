"""Train with acchooks: ``accelerate launch train.py --config configs/quickstart.py``."""

import sys

from acchooks import signals

signals.install()  # first: SIGTERM/SIGUSR1 from here on only set the preemption flag

from acchooks.cli.train import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
