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
        flat = torch.cat(
            [p.detach().flatten().double() for p in runner.unwrapped_model.parameters()]
        )
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

    def __init__(self, iter: int, factor: float = 1e30):
        self.iter, self.factor = iter, factor

    def after_train_iter(self, runner):
        if runner.iter + 1 == self.iter:
            runner.outputs["loss"] = runner.outputs["loss"] * self.factor


@HOOKS.register_module()
class CpuGradScaler(Hook):
    """fp16-style dynamic loss scaling on a CPU, where Accelerate creates no GradScaler:
    give the Accelerator and its prepared optimizer a real ``torch.amp.GradScaler('cpu')``,
    wired as ``AcceleratedOptimizer.__init__`` wires a CUDA one, so the OptimizerHook's
    overflow path (``accelerator.optimizer_step_was_skipped``) runs without a GPU."""

    priority = 0

    def before_run(self, runner):
        from accelerate.optimizer import patch_optimizer_step

        scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)
        opt = runner.optimizer  # the prepared AcceleratedOptimizer
        runner.accelerator.scaler = opt.scaler = scaler
        opt._accelerate_step_called = False
        opt._optimizer_original_step_method = opt.optimizer.step
        opt._optimizer_patched_step_method = patch_optimizer_step(opt, opt.optimizer.step)
