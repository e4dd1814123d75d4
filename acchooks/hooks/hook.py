"""The Hook base class: the contract every hook follows.

A hook is an object with methods named after the stages in :mod:`acchooks.hooks.stages`,
each taking the runner. Implement only the stages you need; the runner builds a
dispatch table once and never calls a hook at a stage it does not implement.

* ``before_run`` / ``after_run``: once per ``runner.run()``.
* ``before_train_epoch`` / ``after_train_epoch`` / ``before_val_epoch`` /
  ``after_val_epoch``: around each workflow phase. Both fall back to ``before_epoch`` /
  ``after_epoch``.
* ``before_train_iter`` / ``after_train_iter`` / ``before_val_iter`` / ``after_val_iter``:
  around each batch; fall back to ``before_iter`` / ``after_iter``. In a train phase,
  ``after_train_iter`` runs inside ``accelerator.accumulate(model)``, after the forward
  pass: the OptimizerHook (ABOVE_NORMAL) does backward and the step there, so hooks with
  a higher priority see the loss before backward and hooks with a lower one see the
  parameters after the step.
* ``before_train_forward``: after ``before_train_iter``, just before the train forward
  pass; the point where a hook transforms the batch by replacing ``runner.data_batch``
  (the forward pass gets the batch as the last hook left it; MixupHook mixes there).
  No fallback: a hook written with only the generic methods never runs there.

What a hook may read from the runner: ``model`` (as prepared by Accelerate),
``unwrapped_model``, ``optimizer``, ``accelerator``, ``data_batch``, ``outputs`` (the
dict returned by the train/val step, with ``loss`` and ``log_vars``), ``log_buffer``,
``mode`` (``'train'``/``'val'``), the counters ``epoch``, ``iter``, ``inner_iter``,
``step``, ``max_epochs``, ``max_iters``, ``by_epoch``, and ``work_dir``, ``logger``,
``cfg``, ``meta``.

A hook that keeps state across iterations returns it from :meth:`state_dict` (plain
data and tensors) and takes it back in :meth:`load_state_dict`; checkpoints store it
under :attr:`state_key`, which must be unique among the registered hooks.

What one hook offers another is a **protocol method** declared here with a default that
does nothing, so the runner and other hooks call it on every hook without ``getattr``:

* :meth:`evaluation_weights` (EMAHook): a context manager entered around an evaluation
  and the best-checkpoint save; the weights it puts in the model are the ones evaluated.
* :meth:`evaluation_other_weights` (EMAHook): a context entered inside those around an
  evaluation with ``evaluation.both_weights``; its value is a
  :class:`~acchooks.evaluation.weight_sets.WeightSet` (the other set of weights, swapped
  in per batch and logged under its name as prefix), or None.
* :meth:`evaluation_progress` (ProgressBarHook): a context manager around an evaluation
  whose value is a per-batch callback (a progress bar), or None.
* :meth:`evaluation_results` (EarlyStoppingHook, the ReduceLROnPlateau LR policy): the
  metrics of an evaluation, gathered from every process (so the same on each), called by
  EvalHook on every hook right after it logs them, inside its ``after_train_epoch``
  (``after_train_iter`` for iteration-based evaluation) at its priority (LOW).
* :meth:`checkpoint_out_dir` (CheckpointHook): ``checkpoint_config.out_dir``, which the
  runner's Checkpointer turns into the run's checkpoint directory.
* :meth:`wrap_dataloaders` (EvalHook): replace the data loaders a hook iterates itself
  (the dry run cuts them to two batches).
* :meth:`nonfinite_policy` (OptimizerHook): ``optimizer_config.nonfinite``, which the
  Checkpointer also applies to non-finite weights at a save and at the end of the run.

A public method whose name starts with ``before_`` or ``after_`` but is not a stage
(``after_train_iteration``), or with a protocol prefix (``evaluation_``, ``checkpoint_``,
``wrap_``) but is not a protocol method (``evaluation_weight``), is an error when the
class is defined: it would otherwise silently never be called.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

from ..errors import did_you_mean
from .stages import FALLBACKS, GENERIC, HOOK_METHODS, STAGES

if TYPE_CHECKING:
    from ..evaluation.weight_sets import WeightSet
    from ..runner.runner import Runner


# what one hook offers another: declared below on Hook, each with a default
PROTOCOL: tuple[str, ...] = (
    "evaluation_weights",
    "evaluation_other_weights",
    "evaluation_progress",
    "evaluation_results",
    "checkpoint_out_dir",
    "checkpoint_async_save",
    "wrap_dataloaders",
    "nonfinite_policy",
)
_PROTOCOL_PREFIXES = ("evaluation_", "checkpoint_", "wrap_")


class Hook:
    """Base class of all hooks. Subclass it and override any stage method."""

    priority: int = 50  # set by runner.register_hook

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, value in vars(cls).items():
            if not callable(value) or name.startswith("_"):
                continue
            if name.startswith(("before_", "after_")) and name not in HOOK_METHODS:
                raise TypeError(
                    f"{cls.__qualname__}.{name} looks like a hook stage but is not one"
                    f"{did_you_mean(name, HOOK_METHODS)} Stages: {', '.join(STAGES + GENERIC)}"
                )
            if name.startswith(_PROTOCOL_PREFIXES) and name not in PROTOCOL:
                raise TypeError(
                    f"{cls.__qualname__}.{name} looks like a hook protocol method but is not "
                    f"one{did_you_mean(name, PROTOCOL)} Protocol methods: {', '.join(PROTOCOL)}"
                )

    # ---- generic stages (the tutorial's vocabulary) ----
    def before_run(self, runner: Runner) -> None:
        pass

    def after_run(self, runner: Runner) -> None:
        pass

    def before_epoch(self, runner: Runner) -> None:
        pass

    def after_epoch(self, runner: Runner) -> None:
        pass

    def before_iter(self, runner: Runner) -> None:
        pass

    def after_iter(self, runner: Runner) -> None:
        pass

    # ---- phase-specific stages, falling back to the generic ones ----
    def before_train_epoch(self, runner: Runner) -> None:
        self.before_epoch(runner)

    def before_val_epoch(self, runner: Runner) -> None:
        self.before_epoch(runner)

    def after_train_epoch(self, runner: Runner) -> None:
        self.after_epoch(runner)

    def after_val_epoch(self, runner: Runner) -> None:
        self.after_epoch(runner)

    def before_train_iter(self, runner: Runner) -> None:
        self.before_iter(runner)

    def before_val_iter(self, runner: Runner) -> None:
        self.before_iter(runner)

    def before_train_forward(self, runner: Runner) -> None:
        """Transform the train batch: replace ``runner.data_batch`` (no fallback)."""

    def after_train_iter(self, runner: Runner) -> None:
        self.after_iter(runner)

    def after_val_iter(self, runner: Runner) -> None:
        self.after_iter(runner)

    # ---- state for checkpoints ----
    @property
    def state_key(self) -> str:
        """Name under which this hook's state is checkpointed (unique per runner)."""
        return type(self).__name__

    def state_dict(self) -> dict[str, Any]:
        """Plain data and tensors needed to resume; empty for stateless hooks."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""

    # ---- protocol: what one hook offers another (defaults do nothing) ----
    def evaluation_weights(self, runner: Runner) -> AbstractContextManager[None]:
        """A context entered around each evaluation and best-checkpoint save; a hook that
        swaps weights into the model for evaluation (EMAHook) does it here."""
        return nullcontext()

    def evaluation_other_weights(self, runner: Runner) -> AbstractContextManager[WeightSet | None]:
        """A context entered inside :meth:`evaluation_weights` when EvalHook evaluates
        two sets of weights in one pass; its value names a second set and swaps it in for
        one batch (EMAHook: the set ``evaluation_weights`` did not put in), or None."""
        return nullcontext(None)

    def evaluation_progress(
        self, runner: Runner, total: int
    ) -> AbstractContextManager[Callable[[], None] | None]:
        """A context around an evaluation of ``total`` batches whose value is called once
        per batch (a progress bar), or None."""
        return nullcontext(None)

    def evaluation_results(self, runner: Runner, results: dict[str, float]) -> None:
        """The metrics of the evaluation that just ran (``accuracy_top-1``: value), the
        same on every process; read them, do not change them."""

    def checkpoint_out_dir(self) -> str | None:
        """The ``out_dir`` this hook gives the run's checkpoints (CheckpointHook), or None."""
        return None

    def checkpoint_async_save(self) -> bool:
        """Whether this hook asks for background checkpoint saves (CheckpointHook's
        ``async_save``)."""
        return False

    def wrap_dataloaders(self, wrap: Callable[[Iterable], Iterable]) -> None:
        """Replace each data loader this hook iterates itself by ``wrap(loader)``."""

    def nonfinite_policy(self) -> str | None:
        """What this hook asks for non-finite values (``'raise'``, ``'skip'``), or None."""
        return None

    # ---- introspection ----
    @classmethod
    def implements(cls, stage: str) -> bool:
        """Whether this class does anything at ``stage`` (directly or via its fallback)."""
        if stage not in STAGES:
            raise ValueError(f"unknown stage '{stage}'{did_you_mean(stage, STAGES)}")
        if getattr(cls, stage) is not getattr(Hook, stage):
            return True
        generic = FALLBACKS.get(stage)
        return generic is not None and getattr(cls, generic) is not getattr(Hook, generic)

    # ---- helpers in mmcv's style ----
    @staticmethod
    def every_n_epochs(runner: Runner, n: int) -> bool:
        return n > 0 and (runner.epoch + 1) % n == 0

    @staticmethod
    def every_n_iters(runner: Runner, n: int) -> bool:
        return n > 0 and (runner.iter + 1) % n == 0

    @staticmethod
    def every_n_inner_iters(runner: Runner, n: int) -> bool:
        return n > 0 and (runner.inner_iter + 1) % n == 0

    @staticmethod
    def end_of_epoch(runner: Runner) -> bool:
        return runner.inner_iter + 1 == runner.epoch_length

    @staticmethod
    def is_last_epoch(runner: Runner) -> bool:
        """The last train epoch: ``max_epochs`` reached, or a stop requested
        (``runner.request_stop``, EarlyStoppingHook)."""
        return runner.epoch + 1 == runner.max_epochs or runner.stopping

    @staticmethod
    def is_last_iter(runner: Runner) -> bool:
        """The last train iteration: ``max_iters`` reached, or a stop requested."""
        return runner.iter + 1 == runner.max_iters or runner.stopping
