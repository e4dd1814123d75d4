"""Test-only hooks: make one process's loss NaN at a step; dump parameters per process."""
import torch

from acchooks import HOOKS, Hook


@HOOKS.register_module()
class NaNLossAt(Hook):
    """Runs before the OptimizerHook (give it priority HIGH)."""

    def __init__(self, step: int, rank: int = 0):
        self.step, self.rank, self.done = step, rank, False

    def after_train_iter(self, runner):
        # once: a skipped step does not advance runner.step
        if runner.step + 1 == self.step and not self.done:
            self.done = True
            if runner.accelerator.process_index == self.rank:
                runner.outputs["loss"] = runner.outputs["loss"] * float("nan")


@HOOKS.register_module()
class DumpParams(Hook):
    def __init__(self, path: str):
        self.path = path

    def after_run(self, runner):
        flat = torch.cat([p.detach().flatten().double() for p in runner.unwrapped_model.parameters()])
        with open(f"{self.path}.{runner.accelerator.process_index}", "w") as f:
            f.write(repr(flat.sum().item()) + " " + repr(flat.abs().sum().item()))


@HOOKS.register_module()
class PoisonWeightsAtEpoch(Hook):
    """Before the CheckpointHook of that epoch (priority HIGH): a weight becomes NaN."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def after_train_epoch(self, runner):
        if runner.epoch + 1 == self.epoch:
            with torch.no_grad():
                next(runner.unwrapped_model.parameters()).view(-1)[0] = float("nan")


@HOOKS.register_module()
class HugeLossAt(Hook):
    """Scales the loss so that fp16 gradients overflow (priority HIGH: before backward)."""

    def __init__(self, iter: int):
        self.iter = iter

    def after_train_iter(self, runner):
        if runner.iter + 1 == self.iter:
            runner.outputs["loss"] = runner.outputs["loss"] * 1e30
