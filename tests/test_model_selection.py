"""Model selection in EvalHook: the raw and the EMA weights evaluated in one pass
(``evaluation.both_weights``) and the k best checkpoints (``evaluation.max_keep_best``),
through configs run in this process (a forked child for the kill) and, marked slow, on
2 processes."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from acchooks import HOOKS
from acchooks.checkpoint import load_checkpoint, prepare_work_dir
from acchooks.checkpoint.faults import ENV
from acchooks.config.schema import check_config
from acchooks.errors import ConfigError
from acchooks.testing import launch_command, run_config, tiny_config

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
BIN = Path(sys.executable).parent
if str(DATA) not in sys.path:  # model_selection_probes, for custom_imports in this process
    sys.path.insert(0, str(DATA))

METRICS = ["accuracy", "precision", "recall", "f1_score"]
OPTIONS = {"topk": (1, 2)}
BEST = "best_accuracy_top-1_epoch_"


def _val_records(work: Path) -> list[dict]:
    (log,) = work.glob("*.log.json")
    return [r for r in map(json.loads, log.read_text().splitlines()) if r.get("mode") == "val"]


def _alone(work: Path, rank: int = 0) -> list[dict]:
    return [json.loads(x) for x in (work / f"alone_rank{rank}.json").read_text().splitlines()]


def _both_cfg(work, evaluate_with_ema: bool, **evaluation):
    return tiny_config(
        work,
        custom_imports=dict(imports=["model_selection_probes"], allow_failed_imports=False),
        custom_hooks=[
            dict(type="EMAHook", momentum=0.5, warm_up=0, evaluate_with_ema=evaluate_with_ema),
            dict(type="AloneEvalProbe", metric=METRICS, metric_options=OPTIONS, priority="LOWEST"),
        ],
        evaluation=dict(interval=1, metric=METRICS, metric_options=OPTIONS, **evaluation),
    )


class CountingLoader:
    """A data loader that counts the passes over it."""

    def __init__(self, loader):
        self.loader, self.passes = loader, 0

    def __iter__(self):
        self.passes += 1
        return iter(self.loader)

    def __len__(self) -> int:
        return len(self.loader)


@pytest.mark.parametrize("evaluate_with_ema", [True, False])
def test_both_weights_in_one_pass_each_equal_to_evaluating_it_alone(tmp_path, evaluate_with_ema):
    from acchooks.config.schema import check_or_raise
    from acchooks.logging import get_logger
    from acchooks.runner import build_runner

    cfg = _both_cfg(tmp_path, evaluate_with_ema)  # both_weights: the default
    check_or_raise(cfg)
    runner = build_runner(cfg, get_logger(str(tmp_path / "run.log")), "20000101_000000")
    eval_hook = runner.hooks.get("EvalHook")
    runner.wrap_dataloaders(CountingLoader)
    runner.run()
    # per epoch: 1 pass of EvalHook for both sets (2 would be 2 passes), 2 of the probe
    assert eval_hook.dataloader.passes == 2 * (1 + 2)
    records, alone = _val_records(tmp_path), _alone(tmp_path)
    evaluated, other = ("ema", "raw") if evaluate_with_ema else ("raw", "ema")
    assert len(records) == len(alone) == 2
    differ = False
    for rec, ref in zip(records, alone, strict=True):
        # the evaluated weights keep today's names; the others are prefixed by their name
        assert {k: rec[k] for k in ref[evaluated]} == ref[evaluated]  # exactly equal
        assert {k: rec[f"{other}_{k}"] for k in ref[other]} == ref[other]
        assert not any(k.startswith(f"{evaluated}_") for k in rec)
        differ |= ref["raw"] != ref["ema"]
    assert differ  # the two sets are told apart: the test can fail
    text = next(tmp_path.glob("*.log")).read_text()
    assert f"{other}_accuracy_top-1: " in text
    assert text.count(f"Evaluating the {other} weights too") == 2
    # the trained weights are back in the model: training went on from them
    assert runner.step == 8


def test_both_weights_false_and_no_ema_log_only_the_evaluated_set(tmp_path):
    run_config(_both_cfg(tmp_path / "off", True, both_weights=False))
    rec = _val_records(tmp_path / "off")[-1]
    assert "accuracy_top-1" in rec and not any(k.startswith(("raw_", "ema_")) for k in rec)
    run_config(tiny_config(tmp_path / "plain", evaluation=dict(interval=1)))
    assert not any(k.startswith(("raw_", "ema_")) for k in _val_records(tmp_path / "plain")[-1])


def _scripted(work, script, keep, **overrides):
    return tiny_config(
        work,
        custom_imports=dict(imports=["model_selection_probes"], allow_failed_imports=False),
        data=dict(train=dict(num_samples=16)),
        runner=dict(max_epochs=len(script)),
        checkpoint_config=dict(interval=1),
        evaluation=dict(
            type="ScriptedEvalHook",
            script=script,
            interval=1,
            save_best="auto",
            max_keep_best=keep,
        ),
        **overrides,
    )


def _best_on_disk(work: Path) -> list[int]:
    """The epochs of the complete best checkpoints in ``work`` (loadable, checksummed)."""
    found = sorted(int(p.name.rsplit("_", 1)[1]) for p in work.glob(f"{BEST}*"))
    for n in found:
        load_checkpoint(work / f"{BEST}{n}")
    return found


def _ranking(runner) -> list[tuple[str, float]]:
    state = runner.hooks.get("ScriptedEvalHook").state_dict()
    return [(os.path.basename(e["path"]), e["score"]) for e in state["best_ckpts"]]


# accuracy by epoch: up and down, with a tie (60 at epochs 3 and 7)
SCRIPT = [50.0, 70.0, 60.0, 80.0, 45.0, 75.0, 60.0]


@pytest.mark.parametrize(
    "keep,best",
    [(1, [4]), (4, [2, 3, 4, 6])],  # k=2: the resume and kill tests
)
def test_keeps_exactly_the_k_best_by_the_rule(tmp_path, keep, best):
    runner = run_config(_scripted(tmp_path, SCRIPT, keep))
    assert _best_on_disk(tmp_path) == best
    ranked = sorted(best, key=lambda n: (-SCRIPT[n - 1], n))  # best first, older on ties
    assert _ranking(runner) == [(f"{BEST}{n}", SCRIPT[n - 1]) for n in ranked]
    hook = runner.hooks.get("ScriptedEvalHook")
    assert (hook.best_score, os.path.basename(hook.best_ckpt)) == (80.0, f"{BEST}4")
    # best_<metric> is logged when a new best is saved, as mmcv (and as before, for k=1)
    logged = [r.get("best_accuracy_top-1") for r in _val_records(tmp_path)]
    assert logged == [50.0, 70.0, None, 80.0, None, None, None]


def test_less_is_better_rule_keeps_the_lowest(tmp_path):
    cfg = _scripted(tmp_path, SCRIPT[:5], 2)
    cfg.evaluation["rule"] = "less"
    run_config(cfg)
    assert _best_on_disk(tmp_path) == [1, 5]


def test_resumed_run_keeps_the_same_set_as_a_straight_one(tmp_path):
    # k=2: the evaluation of epoch 3 enters the ranking after epoch_3 was saved (the
    # CheckpointHook runs first), so the resumed run must learn it from best_..._epoch_3
    straight = run_config(_scripted(tmp_path / "straight", SCRIPT, 2))
    cfg = _scripted(tmp_path / "resumed", SCRIPT, 2)
    cfg.runner["max_epochs"] = 3
    run_config(cfg)
    assert _best_on_disk(tmp_path / "resumed") == [2, 3]
    cfg = _scripted(tmp_path / "resumed", SCRIPT, 2, resume_from=str(tmp_path / "resumed/epoch_3"))
    resumed = run_config(cfg)
    assert resumed.epoch == len(SCRIPT)
    assert _best_on_disk(tmp_path / "resumed") == _best_on_disk(tmp_path / "straight") == [4, 6]
    assert _ranking(resumed) == _ranking(straight) == [(f"{BEST}4", 80.0), (f"{BEST}6", 75.0)]


def _killed_run(cfg, spec: str) -> None:
    os.environ[ENV] = spec
    run_config(cfg)
    os._exit(0)


def test_kill_during_rotation_loses_none_of_the_k_best(tmp_path):
    # max_keep_ckpts=-1: the only removals are the best checkpoints' rotation; the first
    # one is at epoch 3 (best_..._epoch_1 falls out of the 2 best)
    cfg = _scripted(tmp_path, SCRIPT, 2)
    proc = multiprocessing.get_context("fork").Process(target=_killed_run, args=(cfg, "rotation:1"))
    proc.start()
    proc.join(120)
    assert proc.exitcode == -signal.SIGKILL
    # killed mid-delete: both of the 2 best are complete, the third is a hidden trash dir
    assert _best_on_disk(tmp_path) == [2, 3]
    hidden = [p.name for p in tmp_path.iterdir() if p.name.startswith(".trash-")]
    assert len(hidden) == 1 and hidden[0].startswith(f".trash-{BEST}1-")
    resumed = run_config(_scripted(tmp_path, SCRIPT, 2, resume_from="auto"))
    assert resumed.epoch == len(SCRIPT)
    assert _best_on_disk(tmp_path) == [4, 6]
    assert _ranking(resumed) == [(f"{BEST}4", 80.0), (f"{BEST}6", 75.0)]
    assert not prepare_work_dir(tmp_path)  # nothing hidden left behind


def test_options_are_checked_before_the_run(tmp_path):
    with pytest.raises(ConfigError, match="max_keep_best: set, but save_best is not"):
        HOOKS.build(dict(type="EvalHook", max_keep_best=3))
    with pytest.raises(ConfigError, match="evaluation.max_keep_best"):
        HOOKS.build(dict(type="EvalHook", save_best="auto", max_keep_best=0))
    with pytest.raises(ConfigError, match="evaluation.both_weights"):
        HOOKS.build(dict(type="EvalHook", both_weights="yes"))
    cfg = tiny_config(tmp_path, evaluation=dict(interval=1, save_best="auto", max_keep_bets=2))
    problems, _ = check_config(cfg)
    assert any("max_keep_bets" in p and "did you mean 'max_keep_best'" in p for p in problems)


def test_save_best_by_the_other_weights_is_a_clear_error(tmp_path):
    cfg = _both_cfg(tmp_path, True, save_best="raw_accuracy_top-1")
    with pytest.raises(ConfigError, match="raw_accuracy_top-1.*evaluate_with_ema"):
        run_config(cfg)


@pytest.mark.slow
def test_both_weights_on_two_processes(tmp_path):
    """21 val samples on 2 processes x 4: each set's metrics are gathered without the
    sampler's padding and equal that set evaluated alone."""
    cfg = tmp_path / "both.py"
    cfg.write_text(
        "model = dict(type='TinyConvNet', num_classes=4)\n"
        "data = dict(samples_per_gpu=4, workers_per_gpu=0,\n"
        "  train=dict(type='Shapes', num_samples=16, img_size=32, num_classes=4, seed=0,\n"
        "             is_training=True),\n"
        "  val=dict(type='Shapes', num_samples=21, img_size=32, num_classes=4, seed=1))\n"
        "optimizer = dict(type='SGD', lr=0.5, momentum=0.9)\n"
        "optimizer_config = dict(grad_clip=None)\n"
        "lr_config = dict(policy='fixed')\n"
        "runner = dict(type='EpochBasedRunner', max_epochs=2)\n"
        f"evaluation = dict(interval=1, metric={METRICS + ['support']!r})\n"
        "custom_hooks = [dict(type='EMAHook', momentum=0.5, warm_up=0),\n"
        f"  dict(type='AloneEvalProbe', metric={METRICS + ['support']!r}, priority='LOWEST')]\n"
        "log_config = dict(interval=1, hooks=[dict(type='TextLoggerHook')])\n"
        "custom_imports = dict(imports=['acchooks_probes', 'model_selection_probes'],\n"
        "                      allow_failed_imports=False)\n"
        "seed = 0\n"
    )
    work = tmp_path / "work"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(DATA)])}
    launch = launch_command()
    res = subprocess.run(
        [*launch, str(ROOT / "train.py"), "--config", str(cfg), "--work-dir", str(work)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    records = _val_records(work)
    assert len(records) == 2
    for rank in (0, 1):
        for rec, ref in zip(records, _alone(work, rank), strict=True):
            assert ref["ema"]["support"] == ref["raw"]["support"] == 21.0
            assert {k: rec[k] for k in ref["ema"]} == ref["ema"]
            assert {k: rec[f"raw_{k}"] for k in ref["raw"]} == ref["raw"]
