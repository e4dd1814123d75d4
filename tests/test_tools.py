"""The ``acchooks`` command: train/test delegation, print-config, plot-curves,
analyze-time, vis-lr (against the lr a real run logs) and convert."""

from __future__ import annotations

import glob
import json
import math
import os
import subprocess
import sys

import pytest
import torch

from acchooks.cli.main import main
from acchooks.testing import tiny_config

PNG = b"\x89PNG\r\n\x1a\n"
SUBCOMMANDS = ["train", "test", "print-config", "plot-curves", "analyze-time", "vis-lr", "convert"]


def _write_config(path, **overrides) -> str:
    cfg = tiny_config(os.path.dirname(path), **overrides)
    cfg.dump(path)
    return str(path)


def _records(log_path: str) -> list[dict]:
    with open(log_path) as f:
        return [r for r in map(json.loads, f) if "mode" in r]


def _is_png(path) -> bool:
    with open(path, "rb") as f:
        return f.read(8) == PNG and os.path.getsize(path) > 1000


# Two tiny runs through `acchooks train`, logging every iteration.
# A: epoch-based, linear warmup + step by epoch, cosine momentum, a bias lr multiplier,
#    val phase and evaluation (val metrics in the log).
RUN_A = dict(
    data=dict(train=dict(num_samples=32)),
    optimizer=dict(type="SGD", lr=0.02, momentum=0.9, paramwise_cfg=dict(bias_lr_mult=2.0)),
    lr_config=dict(
        _delete_=True,
        policy="step",
        step=[1],
        gamma=0.5,
        warmup="linear",
        warmup_iters=3,
        warmup_ratio=0.1,
    ),
    momentum_config=dict(policy="CosineAnnealing", min_momentum_ratio=0.5, by_epoch=False),
    runner=dict(max_epochs=3),
    workflow=[("train", 1), ("val", 1)],
    evaluation=dict(interval=1, metric="accuracy"),
)
# B: iteration-based, 5 iterations per epoch, accumulation 2 (short last window of each
#    pass), cosine per step with exp warmup, AdamW (betas).
RUN_B = dict(
    data=dict(train=dict(num_samples=40)),
    optimizer=dict(_delete_=True, type="AdamW", lr=0.003, weight_decay=0.01),
    accelerator=dict(gradient_accumulation_steps=2),
    lr_config=dict(
        _delete_=True,
        policy="CosineAnnealing",
        min_lr_ratio=0.01,
        by_epoch=False,
        warmup="exp",
        warmup_iters=2,
        warmup_ratio=0.2,
    ),
    runner=dict(_delete_=True, type="IterBasedRunner", max_iters=13),
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = {}
    for name, overrides in (("a", RUN_A), ("b", RUN_B)):
        d = tmp_path_factory.mktemp(f"run_{name}")
        cfg = _write_config(d / f"tiny_{name}.py", **overrides)
        assert main(["train", "--config", cfg, "--work-dir", str(d / "work")]) == 0
        (log,) = glob.glob(str(d / "work" / "*.log.json"))
        out[name] = {"cfg": cfg, "log": log, "dir": d}
    return out


# ------------------------------------------------------------------ command line
def test_module_help_lists_every_subcommand():
    res = subprocess.run(
        [sys.executable, "-m", "acchooks", "--help"], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr
    for sub in SUBCOMMANDS:
        assert sub in res.stdout


@pytest.mark.parametrize("sub", SUBCOMMANDS)
def test_subcommand_help(sub, capsys):
    with pytest.raises(SystemExit) as e:
        main([sub, "--help"])
    assert e.value.code == 0
    assert f"usage: acchooks {sub} " in capsys.readouterr().out


def test_test_delegates_to_cli_test(runs, tmp_path, capsys):
    rc = main(["test", "--config", runs["a"]["cfg"], "--checkpoint", str(tmp_path / "nope")])
    assert rc == 2
    assert "--checkpoint: not found" in capsys.readouterr().err


# ------------------------------------------------------------------ print-config
def test_print_config_merges_options(tmp_path, capsys):
    cfg = _write_config(tmp_path / "c.py")
    assert (
        main(["print-config", cfg, "--cfg-options", "optimizer.lr=0.5", "runner.max_epochs=7"]) == 0
    )
    ns: dict = {}
    exec(capsys.readouterr().out, ns)
    assert ns["optimizer"]["lr"] == 0.5 and ns["runner"]["max_epochs"] == 7
    assert ns["model"]["model_name"] == "test_resnet"


def test_print_config_errors(tmp_path, capsys):
    cfg = _write_config(tmp_path / "c.py")
    assert main(["print-config", cfg, "--cfg-options", "optimizr.lr=0.5"]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'optimizer'" in err and "Traceback" not in err
    assert main(["print-config", str(tmp_path / "missing.py")]) == 2
    assert "config file not found" in capsys.readouterr().err


# ------------------------------------------------------------------ plot-curves
def test_plot_curves_overlays_runs_and_matches_log(runs, tmp_path):
    a, b = runs["a"]["log"], runs["b"]["log"]
    out, js = tmp_path / "curves.png", tmp_path / "curves.json"
    assert (
        main(
            [
                "plot-curves",
                a,
                b,
                "--keys",
                "loss",
                "--legend",
                "A",
                "B",
                "--out",
                str(out),
                "--json",
                str(js),
            ]
        )
        == 0
    )
    assert _is_png(out)
    series = json.load(open(js))["series"]
    assert [s["label"] for s in series] == ["A", "B"]
    # A: epoch-based, 4 iterations per epoch -> global iteration
    train_a = [r for r in _records(a) if r["mode"] == "train"]
    assert series[0]["x"] == [(r["epoch"] - 1) * 4 + r["iter"] for r in train_a]
    assert series[0]["x"] == list(range(1, 13))
    assert series[0]["y"] == [r["loss"] for r in train_a]
    # B: iteration-based, iter is already global
    train_b = [r for r in _records(b) if r["mode"] == "train"]
    assert series[1]["x"] == [r["iter"] for r in train_b] == list(range(1, 14))
    assert series[1]["y"] == [r["loss"] for r in train_b]


def test_plot_curves_val_metrics_against_epoch(runs, tmp_path):
    a = runs["a"]["log"]
    js = tmp_path / "c.json"
    assert (
        main(
            [
                "plot-curves",
                a,
                "--keys",
                "accuracy_top-1",
                "--out",
                str(tmp_path / "c.png"),
                "--json",
                str(js),
            ]
        )
        == 0
    )
    (s,) = json.load(open(js))["series"]
    val = [r for r in _records(a) if r["mode"] == "val" and "accuracy_top-1" in r]
    assert s["mode"] == "val" and s["x_label"] == "epoch"
    assert s["x"] == [1, 2, 3] and s["y"] == [r["accuracy_top-1"] for r in val]
    # the loss of the val phase, by --mode
    assert (
        main(
            [
                "plot-curves",
                a,
                "--keys",
                "loss",
                "--mode",
                "val",
                "--out",
                str(tmp_path / "v.png"),
                "--json",
                str(js),
            ]
        )
        == 0
    )
    (s,) = json.load(open(js))["series"]
    assert s["y"] == [r["loss"] for r in _records(a) if r["mode"] == "val" and "loss" in r]


def test_plot_curves_epoch_length_from_text_log(tmp_path):
    """Interval 2, 5 iterations per epoch: the last iteration of an epoch is not logged;
    the text log beside the JSON log gives the true epoch length."""
    log = tmp_path / "20240101_000000.log.json"
    recs = [
        {"mode": "train", "epoch": e, "iter": i, "step": 5 * (e - 1) + i, "loss": 1.0 / i}
        for e in (1, 2)
        for i in (2, 4)
    ]
    log.write_text("\n".join(json.dumps(r) for r in [{"seed": 0}, *recs]) + "\n")
    js = tmp_path / "c.json"

    def xs():
        assert (
            main(["plot-curves", str(log), "--out", str(tmp_path / "c.png"), "--json", str(js)])
            == 0
        )
        return json.load(open(js))["series"][0]["x"]

    assert xs() == [2, 4, 6, 8]  # mmcls's estimate: the largest logged iter
    (tmp_path / "20240101_000000.log").write_text(
        "... - INFO - global batch 8 = 8 per process x 1 processes x 1 accumulation; "
        "5 iterations per epoch, 5 optimizer steps per epoch\n"
    )
    assert xs() == [2, 4, 7, 9]


def test_plot_curves_missing_key_lists_keys(runs, tmp_path, capsys):
    out = tmp_path / "c.png"
    assert main(["plot-curves", runs["a"]["log"], "--keys", "los", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no record has key 'los'" in err and "loss" in err and "accuracy_top-1" in err
    assert not out.exists()
    assert (
        main(
            [
                "plot-curves",
                runs["b"]["log"],
                "--keys",
                "accuracy_top-1",
                "--mode",
                "val",
                "--out",
                str(out),
            ]
        )
        == 2
    )
    assert "no val record has key" in capsys.readouterr().err
    assert main(["plot-curves", str(tmp_path / "none.log.json"), "--out", str(out)]) == 2
    assert "log file not found" in capsys.readouterr().err


# ------------------------------------------------------------------ analyze-time
def test_analyze_time_as_mmcls(runs, tmp_path, capsys):
    log = runs["a"]["log"]
    times: dict[int, list[float]] = {}
    for r in _records(log):
        if r["mode"] == "train":
            times.setdefault(r["epoch"], []).append(r["time"])
    for outliers in (False, True):
        js = tmp_path / f"t{outliers}.json"
        argv = ["analyze-time", log, "--json", str(js)] + (
            ["--include-outliers"] if outliers else []
        )
        assert main(argv) == 0
        text = capsys.readouterr().out
        (res,) = json.load(open(js))
        used = {e: t if outliers else t[1:] for e, t in times.items()}
        means = {e: sum(t) / len(t) for e, t in used.items()}
        slow = max(means, key=means.get)
        assert res["slowest_epoch"] == slow
        assert res["fastest_epoch"] == min(means, key=means.get)
        assert res["slowest_time"] == pytest.approx(means[slow], rel=1e-12)
        mean_of_means = sum(means.values()) / len(means)
        std = math.sqrt(sum((m - mean_of_means) ** 2 for m in means.values()) / len(means))
        assert res["std_over_epochs"] == pytest.approx(std, rel=1e-9, abs=1e-15)
        flat = [t for ts in used.values() for t in ts]
        assert res["average_iter_time"] == pytest.approx(sum(flat) / len(flat), rel=1e-12)
        assert f"slowest epoch {slow}, average time is {means[slow]:.4f}" in text
        assert f"average iter time: {sum(flat) / len(flat):.4f} s/iter" in text


# ------------------------------------------------------------------ vis-lr
def _lr_at(sched: dict, records: list[dict], key: str, group: int | None = None):
    """(logged, vis-lr) pairs: a record's value is the one set before the optimizer step
    of its accumulation window (step - 1 if the record's iteration stepped)."""
    pairs, prev = [], 0
    for r in records:
        idx = r["step"] - 1 if r["step"] > prev else r["step"]
        prev = r["step"]
        if idx >= len(sched["step"]):  # a last, incomplete window never steps
            continue
        vis = sched[key][idx] if group is None else sched["groups"][group]["lr"][idx]
        pairs.append((r, vis))
    return pairs


@pytest.mark.parametrize("name", ["a", "b"])
def test_vis_lr_equals_logged_lr(runs, name, tmp_path):
    run = runs[name]
    out, js = tmp_path / "lr.png", tmp_path / "lr.json"
    assert main(["vis-lr", run["cfg"], "--out", str(out), "--json", str(js)]) == 0
    assert _is_png(out)
    sched = json.load(open(js))
    train = [r for r in _records(run["log"]) if r["mode"] == "train"]
    if name == "a":
        assert sched["iters_per_epoch"] == 4 and len(sched["step"]) == 12
        assert train[-1]["step"] == 12
    else:  # 5 iterations per pass, windows of 2, 2, 1; the run's last iteration steps
        assert sched["iters_per_epoch"] == 5 and sched["gradient_accumulation_steps"] == 2
        assert len(sched["step"]) == 8 and train[-1]["step"] == 8
        assert sched["iter"] == [1, 3, 4, 6, 8, 9, 11, 12]
    pairs = _lr_at(sched, train, "lr")
    assert len(pairs) >= 12
    for r, vis in pairs:
        assert vis == pytest.approx(r["lr"], rel=1e-12, abs=0), r
    for r, vis in _lr_at(sched, train, "momentum"):
        assert vis == pytest.approx(r["momentum"], rel=1e-12, abs=0), r
    # the schedule really moves: warmup, decay (and momentum annealing for A)
    assert len({round(v, 15) for v in sched["lr"]}) > 3
    if name == "a":  # the bias group (lr x 2) is logged as lr_bias
        assert sched["groups"][1]["name"] == "bias"
        for r, vis in _lr_at(sched, train, "lr", group=1):
            assert vis == pytest.approx(r["lr_bias"], rel=1e-12, abs=0)
        assert sched["momentum"][0] == 0.9 and sched["momentum"][-1] < 0.9


def test_vis_lr_dataset_size_and_gpus(tmp_path, capsys):
    folder = dict(type="ImageFolder", root=str(tmp_path / "no_such_data"), input_size=32)
    cfg = _write_config(
        tmp_path / "imgs.py",
        data=dict(train=dict(_delete_=True, **folder), val=dict(_delete_=True, **folder)),
        lr_config=dict(_delete_=True, policy="step", step=[1]),
    )
    out = tmp_path / "lr.png"
    assert main(["vis-lr", cfg, "--out", str(out)]) == 2
    assert "--dataset-size: needed" in capsys.readouterr().err and not out.exists()
    js = tmp_path / "lr.json"
    # 100 samples, 8 per process, 3 processes: 13 batches -> 5 per process (even_batches)
    assert (
        main(
            [
                "vis-lr",
                cfg,
                "--dataset-size",
                "100",
                "--ngpus",
                "3",
                "--out",
                str(out),
                "--json",
                str(js),
            ]
        )
        == 0
    )
    sched = json.load(open(js))
    assert sched["iters_per_epoch"] == 5 and len(sched["lr"]) == 10
    assert sched["lr"][:5] == [0.01] * 5 and sched["lr"][5:] == pytest.approx([0.001] * 5)


def test_vis_lr_checks_the_schedule_past_problems_it_ignores(tmp_path, capsys):
    """vis-lr ignores problems of the model, data and workflow (they do not change the
    schedule); one of them, found by the first stage of the check, must not stop the
    later stages from reporting the rest of the config (here a misspelled hook type)."""
    cfg = _write_config(
        tmp_path / "bad.py",
        workflow=[("test", 1)],  # ignored by vis-lr
        custom_hooks=[dict(type="EMAHok")],
    )
    assert main(["vis-lr", cfg, "--out", str(tmp_path / "lr.png")]) == 2
    err = capsys.readouterr().err
    assert "custom_hooks[0].type: unknown hook type 'EMAHok'" in err and "workflow" not in err, err


# ------------------------------------------------------------------ convert
class _Custom:  # pickled by reference: torch.load(weights_only=True) must refuse it
    pass


def _mmcls_checkpoint(path):
    import timm

    model = timm.create_model("test_resnet", num_classes=4)
    state = model.state_dict()
    mm = {("head." if k.startswith("fc.") else "backbone.") + k: v for k, v in state.items()}
    torch.save({"meta": {"epoch": 3, "CLASSES": ["a", "b", "c", "d"]}, "state_dict": mm}, path)
    return model, state


def test_convert_mmcls_to_timm_safetensors(tmp_path, capsys):
    import timm
    from safetensors.torch import load_file

    src = tmp_path / "epoch_3.pth"
    _, state = _mmcls_checkpoint(src)
    out = tmp_path / "out" / "model.safetensors"
    assert main(["convert", str(src), str(out)]) == 0
    assert "backbone.* -> *" in capsys.readouterr().out
    loaded = load_file(str(out))
    assert sorted(loaded) == sorted(state)
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    timm.create_model("test_resnet", num_classes=4).load_state_dict(loaded)  # strict


def test_convert_prefixes_and_shared_tensors(tmp_path):
    from safetensors.torch import load_file

    w = torch.randn(6, 4)
    state = {
        "module.enc.weight": w,
        "module.dec.weight": w,  # tied
        "module.enc.part": w[:2],
        "module.t": torch.randn(4, 3).t(),
    }  # view, non-contiguous
    src = tmp_path / "ddp.pt"
    torch.save(state, src)
    out = tmp_path / "o.safetensors"
    assert (
        main(
            [
                "convert",
                str(src),
                str(out),
                "--strip-prefix",
                "module.",
                "--prefix-map",
                "enc.=encoder.",
                "--force",
            ]
        )
        == 0
    )
    loaded = load_file(str(out))
    assert set(loaded) == {"encoder.weight", "dec.weight", "encoder.part", "t"}
    assert torch.equal(loaded["dec.weight"], w) and torch.equal(loaded["encoder.part"], w[:2])
    assert torch.equal(loaded["t"], state["module.t"])
    assert main(["convert", str(src), str(out)]) == 2  # exists, no --force


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "input not found"),
        ([1, 2, 3], "holds a list"),
        ({"a": "text", "b": 3}, "holds no tensors"),
        (_Custom(), "weights_only=True"),
    ],
)
def test_convert_refuses_bad_input(tmp_path, capsys, content, message):
    src = tmp_path / "in.pth"
    if content is not None:
        torch.save(content, src)
    out = tmp_path / "o.safetensors"
    assert main(["convert", str(src), str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".safetensors")]
