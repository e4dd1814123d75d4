"""EMA or raw weights of a checkpoint with an EMAHook: ``acchooks test --weights``,
``acchooks convert --weights`` and ``load_from=dict(checkpoint=..., weights=...)``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import load_file

from acchooks.cli.main import main
from acchooks.config import Config
from acchooks.config.schema import check_or_raise
from acchooks.errors import ConfigError
from acchooks.evaluation.metrics import evaluate
from acchooks.hooks.ema import EMAHook
from acchooks.logging import get_logger
from acchooks.runner import build_runner
from acchooks.runner.loaders import build_dataloader
from acchooks.testing import run_config

TINY = Path(__file__).resolve().parent / "data" / "tiny_cli.py"
METRIC = dict(metric="accuracy", metric_options={"topk": (1, 2)})
CONFIG = """_base_ = {base!r}
optimizer = dict(type='SGD', lr=0.1, momentum=0.9)
custom_hooks = [dict(type='EMAHook', momentum=0.02, warm_up=0, evaluate_with_ema={ema})]
log_config = dict(interval=1, hooks=[dict(type='TextLoggerHook')])
"""


def _train(root: Path, name: str, evaluate_with_ema: bool) -> dict:
    """A tiny run with an EMAHook; its config file, work dir, last EvalHook record and
    the final EMA and raw weights."""
    cfg_file = root / f"{name}.py"
    cfg_file.write_text(CONFIG.format(base=str(TINY), ema=evaluate_with_ema))
    cfg = Config.fromfile(cfg_file)
    cfg.work_dir = str(root / name)
    runner = run_config(cfg)
    (log,) = Path(cfg.work_dir).glob("*.log.json")
    recs = [json.loads(line) for line in log.read_text().splitlines()]
    return dict(
        cfg=str(cfg_file),
        work=Path(cfg.work_dir),
        logged=[r for r in recs if "accuracy_top-1" in r][-1],
        ema={k: v.clone() for k, v in runner.hooks.get("EMAHook").ema_state_dict().items()},
        raw={k: v.detach().clone() for k, v in runner.unwrapped_model.state_dict().items()},
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("weights_choice")
    return {
        "ema": _train(root, "ema", True),
        "raw": _train(root, "raw", False),
    }


def _direct(state: dict, cfg_file: str) -> dict[str, float]:
    """The metrics of ``state`` on data.val, computed here without acchooks' CLI."""
    cfg = Config.fromfile(cfg_file)
    model = timm.create_model("test_resnet", num_classes=4)
    model.load_state_dict(state)
    model.eval()
    scores, targets = [], []
    with torch.no_grad():
        for x, y in build_dataloader(cfg.data, "val", 0, train=False):
            scores.append(model(x).softmax(dim=1))
            targets.append(y)
    return evaluate(torch.cat(scores), torch.cat(targets), **METRIC)


def _test(run: dict, tmp_path: Path, capsys, *extra: str) -> tuple[int, dict | None, str]:
    out = tmp_path / "res.json"
    out.unlink(missing_ok=True)
    ckpt = str(run["work"] / "epoch_2")
    rc = main(
        ["test", "--config", run["cfg"], "--checkpoint", ckpt, "--split", "val"]
        + ["--out", str(out), "--work-dir", str(tmp_path), *extra]
    )
    text = capsys.readouterr()
    return rc, (json.loads(out.read_text()) if out.exists() else None), text.out + text.err


def _metrics(res: dict) -> dict[str, float]:
    return {k: v for k, v in res.items() if k.startswith("accuracy")}


def test_test_weights_ema_and_raw_match_direct_evaluation(runs, tmp_path, capsys):
    run = runs["ema"]
    ema_direct, raw_direct = _direct(run["ema"], run["cfg"]), _direct(run["raw"], run["cfg"])
    assert ema_direct != raw_direct  # the two sets of weights really evaluate differently
    rc, ema_res, text = _test(run, tmp_path, capsys, "--weights", "ema")
    assert rc == 0, text
    assert f"evaluating the EMA weights of {run['work'] / 'epoch_2'}" in text
    assert ema_res["weights"] == "ema"
    assert _metrics(ema_res) == pytest.approx(ema_direct)
    rc, raw_res, text = _test(run, tmp_path, capsys, "--weights", "raw")
    assert rc == 0, text
    assert f"evaluating the raw weights of {run['work'] / 'epoch_2'}" in text
    assert raw_res["weights"] == "raw"
    assert _metrics(raw_res) == pytest.approx(raw_direct)


@pytest.mark.parametrize("evaluated", ["ema", "raw"])
def test_test_default_is_what_eval_hook_evaluated(runs, tmp_path, capsys, evaluated):
    run = runs[evaluated]
    rc, res, text = _test(run, tmp_path, capsys)
    assert rc == 0, text
    kind = "EMA" if evaluated == "ema" else "raw"
    assert f"evaluating the {kind} weights of " in text
    assert "(what EvalHook evaluated in that run)" in text
    assert res["weights"] == evaluated
    # the EvalHook of that run logged the same metrics at the last epoch
    assert _metrics(res) == pytest.approx(_metrics(run["logged"]))


def test_old_checkpoint_without_record_defaults_to_raw(tmp_path, capsys, monkeypatch):
    # a checkpoint saved before EMAHook recorded what EvalHook evaluated
    original = EMAHook.state_dict

    def old_state_dict(self):
        state = original(self)
        state.pop("evaluated", None)
        return state

    monkeypatch.setattr(EMAHook, "state_dict", old_state_dict)
    run = _train(tmp_path, "old", True)
    monkeypatch.undo()
    rc, res, text = _test(run, tmp_path, capsys)
    assert rc == 0, text
    assert "evaluating the raw weights of " in text
    assert "does not record which EvalHook evaluated" in text
    assert res["weights"] == "raw"
    assert _metrics(res) == pytest.approx(_direct(run["raw"], run["cfg"]))
    rc, res, text = _test(run, tmp_path, capsys, "--weights", "ema")
    assert rc == 0 and res["weights"] == "ema", text
    assert _metrics(res) == pytest.approx(_direct(run["ema"], run["cfg"]))


@pytest.mark.parametrize("weights", ["ema", "raw", None])
def test_convert_writes_the_chosen_weights(runs, tmp_path, capsys, weights):
    run = runs["ema"]
    out = tmp_path / "out.safetensors"
    extra = ["--weights", weights] if weights else []
    assert main(["convert", str(run["work"] / "epoch_2"), str(out), *extra]) == 0
    text = capsys.readouterr().out
    want = run["raw"] if weights == "raw" else run["ema"]  # default: EvalHook's (EMA)
    kind = "raw" if weights == "raw" else "EMA"
    assert f"converted the {kind} weights of " in text
    got = load_file(out)
    assert got.keys() == want.keys()
    for k, v in want.items():
        torch.testing.assert_close(got[k], v.to(got[k].dtype), msg=k)


def _built(cfg: Config):
    """The runner ``cfg`` builds (load_from applied), not run: the weights as loaded."""
    check_or_raise(cfg, cfg.filename)
    Path(cfg.work_dir).mkdir(parents=True, exist_ok=True)
    return build_runner(cfg, get_logger(str(Path(cfg.work_dir) / "run.log")), "run")


@pytest.mark.parametrize("weights", ["ema", "raw"])
def test_load_from_with_weights_loads_them(runs, tmp_path, weights):
    run = runs["ema"]
    cfg = Config.fromfile(run["cfg"])
    cfg.work_dir = str(tmp_path / "ft")
    cfg.load_from = dict(checkpoint=str(run["work"] / "epoch_2"), weights=weights)
    state = _built(cfg).unwrapped_model.state_dict()
    for k, v in run[weights].items():
        torch.testing.assert_close(state[k], v.to(state[k].dtype), msg=k)
    log = (Path(cfg.work_dir) / "run.log").read_text()
    kind = "EMA" if weights == "ema" else "raw"
    assert f"load_from: loading the {kind} weights of " in log


def test_weights_ema_without_ema_is_one_error_naming_the_file(runs, tmp_path, capsys):
    run = runs["ema"]
    plain = tmp_path / "plain.safetensors"
    assert main(["convert", str(run["work"] / "epoch_2"), str(plain), "--weights", "raw"]) == 0
    capsys.readouterr()
    rc = main(
        ["test", "--config", run["cfg"], "--checkpoint", str(plain), "--weights", "ema"]
        + ["--split", "val", "--work-dir", str(tmp_path)]
    )
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("error") == 1
    assert f"--weights: 'ema' asked for, but {plain} holds no EMA weights" in err
    rc = main(["convert", str(plain), str(tmp_path / "o.safetensors"), "--weights", "ema"])
    err = capsys.readouterr().err
    assert rc == 2 and f"{plain} holds no EMA weights" in err
    cfg = Config.fromfile(run["cfg"])
    cfg.work_dir = str(tmp_path / "ft")
    cfg.load_from = dict(checkpoint=str(plain), weights="ema")
    with pytest.raises(ConfigError, match=r"load_from.weights: 'ema' asked for, but .*plain"):
        _built(cfg)
    cfg.load_from = dict(checkpoint=str(plain), weights="EMA")
    with pytest.raises(ConfigError, match=r"load_from.weights: expected 'ema' or 'raw'"):
        _built(cfg)
