"""Test-only hook: one process sends itself a signal after a given train iteration."""

import os
import signal

from acchooks import HOOKS, Hook


@HOOKS.register_module()
class SignalAtIter(Hook):
    def __init__(self, iter: int, rank: int = 0, sig: str = "SIGTERM", times: int = 1):
        self.iter, self.rank, self.sig, self.times = iter, rank, sig, times

    def after_train_iter(self, runner):
        if runner.iter + 1 == self.iter and runner.accelerator.process_index == self.rank:
            for _ in range(self.times):  # a second signal while the first is handled
                os.kill(os.getpid(), getattr(signal, self.sig))
