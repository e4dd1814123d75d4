"""WandbLoggerHook (offline run files) and MlflowLoggerHook (a local file store): what
they log equals the TextLoggerHook's JSON log of the same run; the packages are optional."""

from __future__ import annotations

import importlib.util
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from acchooks.config.schema import check_config
from acchooks.errors import ConfigError
from acchooks.hooks.hook import Hook
from acchooks.registry import HOOKS
from acchooks.testing import launch_command, run_config, tiny_config

ROOT = Path(__file__).resolve().parents[1]
ITERS = 4  # 32 train samples / 8 per batch

wandb = pytest.importorskip("wandb")
mlflow = pytest.importorskip("mlflow")


# an epoch-based run (2 epochs of 4 iterations, a val phase after each) and an iteration-
# based one (8 iterations: evaluation after iterations 3 and 6, a val phase after 3, 6, 8)
RUNNERS = {
    "epochs": dict(
        workflow=[("train", 1), ("val", 1)],
        checkpoint_config=dict(interval=1),
        evaluation=dict(interval=1, metric="accuracy", metric_options={"topk": (1, 2)}),
    ),
    "iters": dict(
        runner=dict(_delete_=True, type="IterBasedRunner", max_iters=8),
        workflow=[("train", 3), ("val", 1)],
        checkpoint_config=dict(interval=4, by_epoch=False),
        evaluation=dict(interval=3, by_epoch=False, metric="accuracy"),
    ),
}


def config(work, *hooks, runner="epochs", **overrides):
    return tiny_config(
        work,
        **RUNNERS[runner],
        **overrides,
        log_config=dict(interval=1, hooks=[dict(type="TextLoggerHook"), *hooks]),
    )


def expected_rows(work: Path, runner: str) -> dict[int, dict[str, float]]:
    """The JSON log as ``{global train iteration: {tag: value}}``, with TensorBoard's tags."""
    (log,) = work.glob("*.log.json")
    rows: dict[int, dict[str, float]] = {}
    by_epoch = runner == "epochs"
    for rec in map(json.loads, log.read_text().splitlines()[1:]):
        mode = rec["mode"]
        if not by_epoch:  # an evaluation's iter is the train iteration it follows
            step = rec["iter"]
        else:
            step = (
                (rec["epoch"] - 1) * ITERS + rec["iter"]
                if mode == "train"
                else rec["epoch"] * ITERS
            )
        tags = {
            f"{mode}/{k}": v
            for k, v in rec.items()
            if k not in ("mode", "epoch", "iter", "step", "lr", "momentum", "time", "data_time")
        }
        if mode == "train":
            tags.update(learning_rate=rec["lr"], momentum=rec["momentum"])
        row = rows.setdefault(step, {})
        assert not set(tags) & set(row), (step, tags, row)
        row.update(tags)
    return rows


# ------------------------------------------------------------------------------ W&B
def wandb_records(run_dir: Path):
    """The records of an offline run's ``.wandb`` file (LevelDB log format, W&B header)."""
    from wandb.proto import wandb_internal_pb2 as pb

    (path,) = run_dir.glob("*.wandb")
    data, block = path.read_bytes(), 32768
    ident, magic, _version = struct.unpack("<4sHB", data[:7])
    assert (ident, magic) == (b":W&B", 0xBEE1)
    pos, buf = 7, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if left < 7 or (kind == 0 and length == 0):  # block trailer / padding
            pos += left
            continue
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        buf = chunk if kind in (1, 2) else buf + chunk  # FULL, FIRST / MIDDLE, LAST
        if kind in (1, 4):
            rec = pb.Record()
            rec.ParseFromString(buf)
            yield rec


@pytest.fixture
def wandb_env(monkeypatch):
    for k, v in dict(
        WANDB_MODE="offline",
        WANDB_SILENT="true",
        WANDB_CONSOLE="off",
        WANDB_DISABLE_GIT="true",
        WANDB_DISABLE_CODE="true",
    ).items():
        monkeypatch.setenv(k, v)


@pytest.mark.parametrize("runner", RUNNERS)
def test_wandb_history_equals_json_log(tmp_path, wandb_env, runner):
    work = tmp_path / "work"
    # W&B's own files inside the work dir (init's dir: WANDB_DIR is read once per process)
    run_config(
        config(
            work,
            dict(
                type="WandbLoggerHook",
                init_kwargs=dict(project="acchooks", dir=str(work)),
                define_metric_cfg={"val/accuracy_top-1": "max"},
            ),
            runner=runner,
        )
    )
    wandb.teardown()  # offline, W&B's service may still be writing the run file after finish
    (run_dir,) = (work / "wandb").glob("offline-run-*")
    history, metrics, artifacts, run_config_json, kinds = {}, {}, [], None, set()
    for rec in wandb_records(run_dir):
        kind = rec.WhichOneof("record_type")
        kinds.add(kind)
        if kind == "history":
            row = {
                (i.key or "/".join(i.nested_key)): json.loads(i.value_json)
                for i in rec.history.item
            }
            assert row["_step"] not in history  # one row per iteration
            history[row["_step"]] = {k: v for k, v in row.items() if not k.startswith("_")}
        elif kind == "metric":
            metrics[rec.metric.name] = rec.metric.summary
        elif kind == "artifact":
            artifacts.append(rec.artifact)
        elif kind == "run":
            run_config_json = {i.key: json.loads(i.value_json) for i in rec.run.config.update}
    assert "exit" in kinds  # the whole run file was read
    expected = expected_rows(work, runner)
    assert sorted(expected) == list(range(1, 2 * ITERS + 1))
    assert history == expected  # every value, exactly, at the train iteration
    both = ITERS if runner == "epochs" else 3  # a train log, an evaluation and a val phase
    assert {"train/loss", "learning_rate", "momentum", "val/loss", "val/accuracy_top-1"} <= set(
        history[both]
    )
    assert metrics["val/accuracy_top-1"].max
    assert run_config_json["optimizer"] == {"type": "SGD", "lr": 0.01, "momentum": 0.9}
    (art,) = artifacts
    assert (art.name, art.type) == ("artifacts", "model")
    files = sorted(e.path for e in art.manifest.contents)
    (json_log,) = work.glob("*.log.json")
    assert files == sorted([json_log.name, json_log.name[: -len(".json")]])  # not wandb/...


def _run_id(run_dir: Path) -> str:
    return next(
        rec.run.run_id for rec in wandb_records(run_dir) if rec.WhichOneof("record_type") == "run"
    )


def _history_steps(run_dir: Path) -> list[int]:
    return [
        rec.history.step.num
        for rec in wandb_records(run_dir)
        if rec.WhichOneof("record_type") == "history"
    ]


def test_wandb_preempted_run_is_marked_and_the_resume_continues_it(tmp_path, wandb_env):
    from acchooks.runner.preemption import Preempted

    work = tmp_path / "work"
    hook = dict(
        type="WandbLoggerHook",
        init_kwargs=dict(project="acchooks", dir=str(work)),
        log_artifact=False,
    )
    with pytest.raises(Preempted):
        run_config(config(work, hook, custom_hooks=[dict(type="SigtermAtIteration3")]))
    wandb.teardown()
    (first,) = (work / "wandb").glob("offline-run-*")
    assert "preempting" in {rec.WhichOneof("record_type") for rec in wandb_records(first)}
    before = _history_steps(first)
    assert before and max(before) <= 3
    run_config(config(work, hook, resume_from="auto"))
    wandb.teardown()
    (second,) = set((work / "wandb").glob("offline-run-*")) - {first}
    assert _run_id(second) == _run_id(first)  # the same W&B run, resumed
    after = _history_steps(second)
    assert after == sorted(after) and min(after) > max(before) and max(after) == 2 * ITERS


# --------------------------------------------------------------------------- MLflow
@pytest.fixture
def mlflow_store(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # file stores are opt-in in MLflow 3
    return mlflow.MlflowClient()


@pytest.mark.parametrize("runner", RUNNERS)
def test_mlflow_metrics_params_and_weights(tmp_path, mlflow_store, runner):
    client, work = mlflow_store, tmp_path / "work"
    run_config(
        config(
            work,
            dict(
                type="MlflowLoggerHook",
                exp_name="tiny",
                tags=dict(team="a"),
                params=dict(note="baseline"),
            ),
            runner=runner,
        )
    )
    (run,) = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    assert run.info.status == "FINISHED"
    expected = expected_rows(work, runner)
    got: dict[int, dict[str, float]] = {}
    for tag in run.data.metrics:
        for m in client.get_metric_history(run.info.run_id, tag):
            assert tag not in got.setdefault(m.step, {})
            got[m.step][tag] = m.value
    assert got == expected
    params = run.data.params
    assert params["optimizer.lr"] == "0.01" and params["data.train.type"] == "Shapes"
    assert params["note"] == "baseline" and run.data.tags["team"] == "a"
    local = Path(client.download_artifacts(run.info.run_id, "", str(tmp_path / "dl")))
    final = work / ("epoch_2" if runner == "epochs" else "iter_8")
    assert (work / "latest").read_text().strip() == final.name
    assert (local / "models" / "model.safetensors").read_bytes() == (
        final / "model.safetensors"
    ).read_bytes()
    assert "optimizer = " in (local / "config.py").read_text()


@HOOKS.register_module(force=True)
class SigtermAtIteration3(Hook):
    """Sends this process SIGTERM after iteration 3, as a cluster's preemption would."""

    def after_train_iter(self, runner) -> None:
        if runner.iter == 2:
            import signal

            os.kill(os.getpid(), signal.SIGTERM)


def test_mlflow_preempted_run_is_killed_and_the_resume_continues_it(tmp_path, mlflow_store):
    from acchooks.runner.preemption import Preempted

    client, work = mlflow_store, tmp_path / "work"
    hook = dict(type="MlflowLoggerHook", exp_name="tiny", log_model=False)
    with pytest.raises(Preempted):
        run_config(config(work, hook, custom_hooks=[dict(type="SigtermAtIteration3")]))
    exp = client.get_experiment_by_name("tiny").experiment_id
    (run,) = client.search_runs([exp])
    assert run.info.status == "KILLED"
    before = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")]
    assert before and max(before) <= 3
    run_config(config(work, hook, resume_from="auto"))
    (resumed,) = client.search_runs([exp])  # the same run, continued
    assert resumed.info.run_id == run.info.run_id and resumed.info.status == "FINISHED"
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")]
    assert steps == sorted(set(steps)) and steps[: len(before)] == before and max(steps) == 8


def test_mlflow_store_that_cannot_open_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    if importlib.util.find_spec("sqlalchemy") or not mlflow.get_tracking_uri().startswith("sqlite"):
        pytest.skip("MLflow's default store opens here (full mlflow, or mlflow < 3)")
    with pytest.raises(
        RuntimeError,
        match=r"(?s)cannot open the MLflow tracking store 'sqlite:.*"
        r"Set MLFLOW_TRACKING_URI",
    ):
        run_config(config(tmp_path / "work", dict(type="MlflowLoggerHook")))


# ------------------------------------------------------------------------ checking
@pytest.mark.parametrize(
    "hook, package", [("WandbLoggerHook", "wandb"), ("MlflowLoggerHook", "mlflow")]
)
def test_missing_package_is_one_config_error(tmp_path, monkeypatch, hook, package):
    monkeypatch.setitem(sys.modules, package, None)  # as if not installed
    work = tmp_path / "work"
    with pytest.raises(ConfigError) as e:
        run_config(config(work, dict(type=hook)))
    msg = (
        f"log_config.hooks[1] ({hook}): needs the '{package}' package: "
        f"pip install 'acchooks[{package}]'"
    )
    assert str(e.value).count(msg) == 1 and str(e.value).count("needs the") == 1
    assert not work.exists()  # before anything was built


def test_missing_package_from_the_command_line(tmp_path):
    cfg = tmp_path / "cfg.py"
    cfg.write_text(
        f"_base_ = '{ROOT / 'tests' / 'data' / 'tiny_cli.py'}'\n"
        "log_config = dict(interval=1, hooks=[dict(type='WandbLoggerHook'), "
        "dict(type='MlflowLoggerHook')])\n"
    )
    code = (
        "import runpy, sys\nsys.modules['wandb'] = None  # as if not installed\n"
        f"sys.argv = ['train.py', '--config', {str(cfg)!r}, '--work-dir', 'w']\n"
        f"try:\n    runpy.run_path({str(ROOT / 'train.py')!r}, run_name='__main__')\n"
        "finally:\n    print('mlflow imported:', 'mlflow' in sys.modules)\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert res.returncode == 2, res.stderr[-2000:]
    assert (
        "log_config.hooks[0] (WandbLoggerHook): needs the 'wandb' package: "
        "pip install 'acchooks[wandb]'"
    ) in res.stderr
    assert res.stderr.count("needs the") == 1
    assert not (tmp_path / "w").exists()
    # acchooks and the config check never import the packages themselves: a run does
    assert "mlflow imported: False" in res.stdout


def test_misspelled_arguments_are_config_errors(tmp_path):
    cfg = config(
        tmp_path,
        dict(
            type="WandbLoggerHook",
            init_kwarg=dict(project="p"),
            define_metric_cfg={"val/loss": "minimum"},
        ),
        dict(type="MlflowLoggerHook", exp_nam="x"),
    )
    problems, _ = check_config(cfg)
    assert any(
        p.startswith(
            "log_config.hooks[1] (WandbLoggerHook): unexpected argument "
            "'init_kwarg'; did you mean 'init_kwargs'?"
        )
        for p in problems
    )
    assert any(
        p.startswith(
            "log_config.hooks[1] (WandbLoggerHook): define_metric_cfg['val/loss']:"
            " summary 'minimum' is not one of min, max"
        )
        for p in problems
    )
    assert any(
        p.startswith(
            "log_config.hooks[2] (MlflowLoggerHook): unexpected argument "
            "'exp_nam'; did you mean 'exp_name'?"
        )
        for p in problems
    )
    assert len(problems) == 3, problems


# ------------------------------------------------------------------ two processes
@pytest.mark.slow
def test_two_processes_log_once(tmp_path, monkeypatch):
    cfg = tmp_path / "cfg.py"
    cfg.write_text(
        f"_base_ = '{ROOT / 'tests' / 'data' / 'tiny_cli.py'}'\n"
        "log_config = dict(interval=1, hooks=[dict(type='TextLoggerHook'), "
        "dict(type='WandbLoggerHook', log_artifact=False), "
        "dict(type='MlflowLoggerHook', exp_name='two', log_model=False)])\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_CONSOLE": "off",
        "WANDB_DIR": str(tmp_path),
        "MLFLOW_TRACKING_URI": (tmp_path / "mlruns").as_uri(),
        "MLFLOW_ALLOW_FILE_STORE": "true",
    }
    res = subprocess.run(
        [
            *launch_command(),
            str(ROOT / "train.py"),
            "--config",
            str(cfg),
            "--work-dir",
            str(tmp_path / "w"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert len(list((tmp_path / "wandb").glob("offline-run-*"))) == 1
    monkeypatch.setenv("MLFLOW_TRACKING_URI", env["MLFLOW_TRACKING_URI"])
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    client = mlflow.MlflowClient()
    (run,) = client.search_runs([client.get_experiment_by_name("two").experiment_id])
    # 64 samples / (16 per process x 2) = 2 iterations per epoch, 2 epochs
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")] == [
        1,
        2,
        3,
        4,
    ]
