"""The hook contract: stage vocabulary, fallbacks, dispatch, order, the startup table."""

import inspect

import pytest

from acchooks import HOOKS, Hook
from acchooks.hooks.stages import FALLBACKS, GENERIC, STAGES
from acchooks.hooks.table import HookTable
from acchooks.testing import run_config, tiny_config


def test_hook_base_matches_vocabulary():
    methods = {
        n
        for n, f in inspect.getmembers(Hook, inspect.isfunction)
        if n.startswith(("before_", "after_"))
    }
    assert methods == set(STAGES) | set(GENERIC)
    # before_train_forward transforms the train batch: no generic fallback
    assert set(FALLBACKS) == set(STAGES) - {"before_run", "after_run", "before_train_forward"}


def test_misspelled_stage_is_an_error_at_class_definition():
    with pytest.raises(TypeError, match="after_train_iteration.*did you mean 'after_train_iter'"):

        class Bad(Hook):
            def after_train_iteration(self, runner):
                pass


def test_generic_methods_fall_back_and_dispatch_skips_non_implementers():
    class OnlyIter(Hook):
        def after_iter(self, runner):
            pass

    assert OnlyIter.implements("after_train_iter") and OnlyIter.implements("after_val_iter")
    assert not OnlyIter.implements("before_run")
    table = HookTable()
    table.register(OnlyIter())
    assert "after_train_iter:" in table.describe()
    assert "before_run:" not in table.describe()


def test_equal_priority_keeps_registration_order():
    class A(Hook):
        def before_run(self, runner):
            pass

    class B(A):
        pass

    class C(A):
        pass

    table = HookTable()
    table.register(B(), "NORMAL")
    table.register(C(), 10)
    table.register(A(), 50)
    assert [type(h).__name__ for h in table.hooks] == ["C", "B", "A"]


@HOOKS.register_module(force=True)
class CountingHook(Hook):
    """The tutorial's MyHook: generic stages only, counting its calls."""

    def __init__(self, a, b, name="counter"):
        self.a, self.b, self.name = a, b, name
        self.calls: dict[str, int] = {}

    def _count(self, stage, runner):
        self.calls[f"{stage}:{runner.mode}"] = self.calls.get(f"{stage}:{runner.mode}", 0) + 1

    def before_run(self, runner):
        self._count("before_run", runner)

    def after_run(self, runner):
        self._count("after_run", runner)

    def before_epoch(self, runner):
        self._count("before_epoch", runner)

    def after_epoch(self, runner):
        self._count("after_epoch", runner)

    def before_iter(self, runner):
        self._count("before_iter", runner)

    def after_iter(self, runner):
        self._count("after_iter", runner)


def test_tutorial_hook_runs_in_train_and_val_phases(tmp_path):
    cfg = tiny_config(
        tmp_path,
        workflow=[("train", 1), ("val", 1)],
        custom_hooks=[dict(type="CountingHook", a=1, b=2)],
    )
    runner = run_config(cfg)
    hook = runner.hooks.get("CountingHook")
    # 2 epochs; train: 32 samples / 8 = 4 iters; val: 20 samples / 8 = 3 iters
    assert hook.calls == {
        "before_run:train": 1,
        "after_run:train": 1,
        "before_epoch:train": 2,
        "after_epoch:train": 2,
        "before_iter:train": 8,
        "after_iter:train": 8,
        "before_epoch:val": 2,
        "after_epoch:val": 2,
        "before_iter:val": 6,
        "after_iter:val": 6,
    }
    assert runner.step == 8 and runner.epoch == 2 and runner.iter == 8


@HOOKS.register_module(force=True)
class TagHook(Hook):
    def __init__(self, tag=""):
        self.tag = tag

    def before_train_iter(self, runner):
        pass


def test_order_mixes_default_and_custom_hooks(tmp_path):
    cfg = tiny_config(
        tmp_path,
        lr_config=dict(policy="step", step=[1]),
        checkpoint_config=dict(interval=1),
        evaluation=dict(interval=1),
        momentum_config=dict(policy="step", step=[1], gamma=0.5),
        log_config=dict(
            interval=1, hooks=[dict(type="TextLoggerHook"), dict(type="TensorboardLoggerHook")]
        ),
        runner=dict(max_epochs=1),
        custom_hooks=[
            dict(type="TagHook", tag="p89", priority=89),
            dict(type="TagHook", tag="normal"),
            dict(type="TagHook", tag="p1", priority=1),
        ],
    )
    runner = run_config(cfg)
    names = [
        type(h).__name__ + (f"[{h.tag}]" if isinstance(h, TagHook) else "")
        for h in runner.hooks.hooks
    ]
    assert names == [
        "TagHook[p1]",
        "LrUpdaterHook",
        "MomentumUpdaterHook",
        "OptimizerHook",
        "CheckpointHook",
        "TagHook[normal]",
        "IterTimerHook",
        "EvalHook",
        "TagHook[p89]",
        "TextLoggerHook",
        "TensorboardLoggerHook",
    ]
    table = runner.get_hook_info()
    assert table.startswith("Hooks will be executed in the following order:")
    section = table.split("before_train_iter:")[1].split("after_train_iter:")[0]
    rows = [r.strip() for r in section.splitlines() if r.startswith("(") and "priority" not in r]
    assert rows == [
        "(1           ) TagHook",
        "(VERY_HIGH   ) LrUpdaterHook",
        "(HIGH        ) MomentumUpdaterHook",
        "(NORMAL      ) TagHook",
        "(LOW         ) IterTimerHook",
        "(89          ) TagHook",
    ]
    log = next(tmp_path.glob("*.log")).read_text()
    assert "Hooks will be executed in the following order:" in log
