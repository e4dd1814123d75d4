"""Test-only: a process signals itself at a chosen stage of a train run, or trains slowly.

``ACCHOOKS_TEST_SIGNAL=SIGTERM@import`` signals while this module is imported (the
config check imports ``custom_imports``); the hook ``SignalAtStage`` signals when it is
built or when its state is loaded by a resume. ``SlowIters`` sleeps after each train
iteration and writes ``pid-<rank>`` into the work dir (so a test can find and end orphans).
"""

import os
import signal
import time

from acchooks import HOOKS, Hook


def _signal(sig: str) -> None:
    os.kill(os.getpid(), getattr(signal, sig))
    time.sleep(0.2)  # the default action (death) would happen here


_at = os.environ.get("ACCHOOKS_TEST_SIGNAL", "")
if _at.endswith("@import"):
    _signal(_at.split("@")[0])


@HOOKS.register_module()
class SignalAtStage(Hook):
    def __init__(self, stage: str, sig: str = "SIGTERM", rank: int = 0):
        self.stage, self.sig, self.rank = stage, sig, rank
        if stage == "build" and int(os.environ.get("RANK", "0")) == rank:
            _signal(sig)

    def state_dict(self):
        return {"seen": 1}

    def load_state_dict(self, state):
        if self.stage == "resume":
            _signal(self.sig)


@HOOKS.register_module()
class SlowIters(Hook):
    def __init__(self, seconds: float = 0.5):
        self.seconds = seconds

    def before_run(self, runner):
        rank = runner.accelerator.process_index
        with open(os.path.join(runner.work_dir, f"pid-{rank}"), "w") as f:
            f.write(str(os.getpid()))

    def after_train_iter(self, runner):
        time.sleep(self.seconds)
