"""Per-sample evaluation outputs: ``acchooks test --out-samples DIR`` (safetensors + JSON,
no pickle), ``acchooks metrics`` recomputing the logged metrics exactly from them, and
``acchooks confusion-matrix`` counting what a direct count of the samples gives."""

from __future__ import annotations

import csv
import json
import os
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from acchooks.cli.main import main
from acchooks.config import Config
from acchooks.datasets import Shapes
from acchooks.testing import launch_command, run_config

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "data" / "tiny_cli.py"
PNG = b"\x89PNG\r\n\x1a\n"
MULTI_METRICS = ["mAP", "CP", "CR", "CF1", "OP", "OR", "OF1"]
MULTI = dict(type="MultiLabelShapes", img_size=32, num_classes=4, extra_positive=0.3)
MULTI_CONFIG = f"""_base_ = {str(TINY)!r}
custom_imports = dict(imports=['acchooks.testing.multilabel'], allow_failed_imports=False)
model = dict(loss=dict(type='BinaryCrossEntropy'))
data = dict(
    train=dict(_delete_=True, num_samples=16, seed=0, is_training=True, **{MULTI!r}),
    val=dict(_delete_=True, num_samples=20, seed=1, difficult=0.2, **{MULTI!r}),
)
runner = dict(max_epochs=1)
evaluation = dict(_delete_=True, interval=1, metric={MULTI_METRICS!r}, metric_options=dict(k=2))
log_config = dict(interval=1, hooks=[dict(type='TextLoggerHook')])
"""


def _train(config: Path, work: Path) -> dict:
    """Train ``config`` in this process; the last EvalHook record of its JSON log."""
    cfg = Config.fromfile(config)
    cfg.work_dir = str(work)
    run_config(cfg)
    (log,) = work.glob("*.log.json")
    records = [json.loads(line) for line in log.read_text().splitlines()]
    return [r for r in records if r.get("mode") == "val"][-1]


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> dict:
    """tiny_cli.py trained for 2 epochs, and its epoch-2 checkpoint tested with --out-samples."""
    root = tmp_path_factory.mktemp("single")
    logged = _train(TINY, root / "work")
    return dict(logged=logged, ckpt=str(root / "work" / "epoch_2"), **_test(TINY, root, "work"))


@pytest.fixture(scope="module")
def multi(tmp_path_factory) -> dict:
    """A multi-label (MultiLabelShapes, difficult labels) run, tested with --out-samples."""
    root = tmp_path_factory.mktemp("multi")
    config = root / "multi.py"
    config.write_text(MULTI_CONFIG)
    logged = _train(config, root / "work")
    return dict(logged=logged, config=str(config), **_test(config, root, "work", "epoch_1"))


def _test(config: Path, root: Path, work: str, ckpt: str = "epoch_2", *extra: str) -> dict:
    out, samples = root / "test.json", root / "samples"
    rc = main(
        ["test", "--config", str(config), "--checkpoint", str(root / work / ckpt)]
        + ["--split", "val", "--out", str(out), "--out-samples", str(samples)]
        + ["--work-dir", str(root / "test_work"), *extra]
    )
    assert rc == 0
    return dict(reported=json.loads(out.read_text()), samples=samples)


def _cli(capsys, *argv: str) -> tuple[int, str]:
    rc = main(list(argv))
    text = capsys.readouterr()
    return rc, text.out + text.err


def _load(samples: Path) -> tuple[dict, dict]:
    """The two files, read with safetensors and json only (never unpickled)."""
    assert sorted(os.listdir(samples)) == ["samples.json", "samples.safetensors"]
    tensors = load_file(samples / "samples.safetensors")
    meta = json.loads((samples / "samples.json").read_text())
    return tensors, meta


def test_single_label_outputs_are_the_samples_in_dataset_order(single):
    tensors, meta = _load(single["samples"])
    val = Shapes(num_samples=30, img_size=32, num_classes=4, seed=1)
    assert torch.equal(tensors["indices"], torch.arange(30))
    assert torch.equal(tensors["targets"], torch.tensor(val.targets))
    scores = tensors["scores"]
    assert scores.shape == (30, 4) and scores.dtype == torch.float32
    assert torch.allclose(scores.sum(1), torch.ones(30))  # softmax scores
    assert meta["classes"] == val.classes and meta["ids"]["index"] == list(range(30))
    assert meta["ids"]["path"] is None  # generated images have no files
    assert (meta["checkpoint"], meta["weights"], meta["split"]) == (single["ckpt"], "raw", "val")
    assert meta["metric"] == ["accuracy"] and meta["metric_options"] == {"topk": [1, 2]}


def test_single_label_recompute_equals_the_logged_metrics_exactly(single, capsys, tmp_path):
    logged, reported = single["logged"], single["reported"]
    keys = ["accuracy_top-1", "accuracy_top-2"]
    # EvalHook's log, acchooks test's report and the stored results: the same floats
    assert {k: reported[k] for k in keys} == {k: logged[k] for k in keys}
    out = tmp_path / "re.json"
    rc, text = _cli(
        capsys, "metrics", "--results", str(single["samples"]), "--check", "--out", str(out)
    )
    assert rc == 0, text
    assert "equal to the results acchooks test reported" in text
    assert {k: json.loads(out.read_text())[k] for k in keys} == {k: logged[k] for k in keys}
    # other metrics from the same samples: the library's metric functions, same inputs
    from acchooks.evaluation import evaluate

    tensors, _ = _load(single["samples"])
    rc, text = _cli(
        capsys,
        "metrics",
        "--results",
        str(single["samples"]),
        "--metrics",
        "precision",
        "f1_score",
        "--metric-options",
        "average_mode=none",
        "--out",
        str(out),
    )
    assert rc == 0, text
    want = evaluate(
        tensors["scores"], tensors["targets"], ["precision", "f1_score"], {"average_mode": "none"}
    )
    got = json.loads(out.read_text())
    assert {k: got[k] for k in want} == want and "precision_class-3" in want


def test_check_fails_when_the_samples_do_not_give_the_stored_results(single, capsys, tmp_path):
    changed = tmp_path / "changed"
    changed.mkdir()
    tensors, meta = _load(single["samples"])
    meta["results"]["accuracy_top-1"] += 1.0
    (changed / "samples.json").write_text(json.dumps(meta))
    (changed / "samples.safetensors").write_bytes(
        (single["samples"] / "samples.safetensors").read_bytes()
    )
    rc, text = _cli(capsys, "metrics", "--results", str(changed), "--check")
    assert rc == 1 and "differs from the results acchooks test reported" in text
    assert "accuracy_top-1" in text


def test_confusion_matrix_counts_equal_a_direct_count(single, capsys, tmp_path):
    tensors, _ = _load(single["samples"])
    pairs = Counter(
        (int(t), max(range(4), key=lambda c: float(s[c])))
        for s, t in zip(tensors["scores"], tensors["targets"], strict=True)
    )
    csv_file, png = tmp_path / "cm.csv", tmp_path / "cm.png"
    rc, text = _cli(
        capsys,
        "confusion-matrix",
        "--results",
        str(single["samples"]),
        "--csv",
        str(csv_file),
        "--out",
        str(png),
    )
    assert rc == 0, text
    rows = list(csv.reader(csv_file.open()))
    assert rows[0] == ["true \\ pred", "circle", "square", "triangle", "cross"]
    counts = [[int(v) for v in row[1:]] for row in rows[1:]]
    assert counts == [[pairs[(t, p)] for p in range(4)] for t in range(4)]
    assert sum(map(sum, counts)) == 30
    assert f"circle      | {' '.join(f'{v:>8}' for v in counts[0])}" in text
    assert png.read_bytes()[:8] == PNG
    # normalised by true class: the rows are the per-class recall
    rc, text = _cli(
        capsys,
        "confusion-matrix",
        "--results",
        str(single["samples"]),
        "--normalize",
        "true",
        "--csv",
        str(csv_file),
    )
    rows = [[float(v) for v in r[1:]] for r in list(csv.reader(csv_file.open()))[1:]]
    assert rows[0] == pytest.approx([c / max(sum(counts[0]), 1) for c in counts[0]])


def _top2(scores: torch.Tensor) -> list[set[int]]:
    return [set(sorted(range(4), key=lambda c: -float(s[c]))[:2]) for s in scores]


def test_multi_label_recompute_equals_the_logged_metrics_exactly(multi, capsys, tmp_path):
    tensors, meta = _load(multi["samples"])
    assert tensors["targets"].shape == (20, 4) and (tensors["targets"] == -1).any()
    assert torch.equal(tensors["indices"], torch.arange(20))
    assert meta["metric"] == MULTI_METRICS and meta["metric_options"] == {"k": 2}
    logged = {k: multi["logged"][k] for k in MULTI_METRICS}
    assert {k: multi["reported"][k] for k in MULTI_METRICS} == logged
    out = tmp_path / "re.json"
    rc, text = _cli(
        capsys, "metrics", "--results", str(multi["samples"]), "--check", "--out", str(out)
    )
    assert rc == 0, text
    assert {k: json.loads(out.read_text())[k] for k in MULTI_METRICS} == logged
    # the confusion counts: each class's TP/FP/FN/TN over the top-2 predictions
    csv_file = tmp_path / "ml.csv"
    rc, text = _cli(
        capsys, "confusion-matrix", "--results", str(multi["samples"]), "--csv", str(csv_file)
    )
    assert rc == 0, text
    predicted = _top2(tensors["scores"])
    want = []
    for c, name in enumerate(meta["classes"]):
        cell = Counter(
            (c in p, bool(t[c] == 1)) for p, t in zip(predicted, tensors["targets"], strict=True)
        )
        want.append([name, *(str(cell[k]) for k in [(1, 1), (1, 0), (0, 1), (0, 0)])])
    assert list(csv.reader(csv_file.open())) == [["class", "TP", "FP", "FN", "TN"], *want]


def test_paths_of_an_image_folder_relative_to_its_root(single, tmp_path):
    from PIL import Image

    root = tmp_path / "images"
    rng = np.random.default_rng(0)
    for kind in ("circle", "cross", "square", "triangle"):
        (root / kind).mkdir(parents=True)
        for i in range(2):
            pixels = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / kind / f"{i}.png")
    config = tmp_path / "folder.py"
    config.write_text(
        f"_base_ = {str(TINY)!r}\n"
        f"data = dict(val=dict(_delete_=True, type='ImageFolder', root={str(root)!r}, "
        "input_size=32, crop_pct=1.0))\n"
    )
    samples = tmp_path / "samples"
    rc = main(
        [
            "test",
            "--config",
            str(config),
            "--checkpoint",
            single["ckpt"],
            "--split",
            "val",
            "--out-samples",
            str(samples),
            "--work-dir",
            str(tmp_path / "w"),
        ]
    )
    assert rc == 0
    tensors, meta = _load(samples)
    assert meta["ids"]["path"] == [
        f"{k}/{i}.png" for k in ("circle", "cross", "square", "triangle") for i in range(2)
    ]
    assert meta["classes"] == ["circle", "cross", "square", "triangle"]
    assert tensors["targets"].tolist() == [0, 0, 1, 1, 2, 2, 3, 3]


def test_shuffled_loader_still_gives_dataset_order(single, tmp_path):
    root = tmp_path
    (root / "work").symlink_to(Path(single["ckpt"]).parent)
    res = _test(TINY, root, "work", "epoch_2", "--cfg-options", "data.val_dataloader.shuffle=True")
    tensors, _ = _load(res["samples"])
    plain, _ = _load(single["samples"])
    assert torch.equal(tensors["indices"], torch.arange(30))
    assert torch.equal(tensors["targets"], plain["targets"])
    assert torch.allclose(tensors["scores"], plain["scores"], atol=1e-6)
    assert res["reported"]["accuracy_top-1"] == single["reported"]["accuracy_top-1"]


def test_bad_input_is_one_clear_message(single, capsys, tmp_path):
    rc, text = _cli(capsys, "metrics", "--results", str(tmp_path))
    assert rc == 2 and f"--results {tmp_path}: no samples.json in it" in text
    assert "acchooks test --out-samples DIR" in text
    rc, text = _cli(capsys, "metrics", "--results", str(single["samples"]), "--metrics", "acuracy")
    assert rc == 2 and "--metrics: unknown metric 'acuracy'; did you mean 'accuracy'" in text
    rc, text = _cli(capsys, "metrics", "--results", str(single["samples"]), "--metrics", "mAP")
    assert rc == 2 and "'mAP' is a multi-label metric" in text
    rc, text = _cli(capsys, "confusion-matrix", "--results", str(single["samples"]), "--k", "2")
    assert rc == 2 and "--thr / --k: only for multi-label results" in text
    a_file = tmp_path / "file"
    a_file.write_text("")
    rc, text = _cli(
        capsys,
        "test",
        "--config",
        str(TINY),
        "--checkpoint",
        single["ckpt"],
        "--out-samples",
        str(a_file),
    )
    assert rc == 2 and "--out-samples: " in text and "is a file; give a folder" in text


@pytest.mark.slow
def test_two_processes_give_each_sample_once_in_dataset_order(single, tmp_path):
    """4 samples a batch: 8 batches of 30 samples over 2 processes, the last one padded."""
    samples = tmp_path / "samples"
    launcher = launch_command()
    res = subprocess.run(
        [
            *launcher,
            str(ROOT / "test.py"),
            "--config",
            str(TINY),
            "--checkpoint",
            single["ckpt"],
            "--split",
            "val",
            "--out-samples",
            str(samples),
            "--work-dir",
            str(tmp_path / "w"),
            "--cfg-options",
            "data.samples_per_gpu=4",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert res.returncode == 0, res.stderr[-2000:]
    tensors, meta = _load(samples)
    plain, _ = _load(single["samples"])
    assert torch.equal(tensors["indices"], torch.arange(30)) and meta["num_samples"] == 30
    assert torch.equal(tensors["targets"], plain["targets"])
    assert torch.allclose(tensors["scores"], plain["scores"], atol=1e-6)
    from acchooks.evaluation import evaluate

    recomputed = evaluate(tensors["scores"], tensors["targets"], "accuracy", {"topk": (1, 2)})
    assert recomputed == {k: meta["results"][k] for k in recomputed}
    assert recomputed == {k: single["logged"][k] for k in recomputed}


@pytest.mark.parametrize("sub", ["metrics", "confusion-matrix"])
def test_subcommands_are_registered_with_help(sub, capsys):
    with pytest.raises(SystemExit) as e:
        main([sub, "--help"])
    assert e.value.code == 0
    assert f"usage: acchooks {sub} " in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--help"])
    assert sub in capsys.readouterr().out


def test_drop_last_keeps_the_evaluated_samples_only(single, tmp_path):
    (tmp_path / "work").symlink_to(Path(single["ckpt"]).parent)
    res = _test(
        TINY, tmp_path, "work", "epoch_2", "--cfg-options", "data.val_dataloader.drop_last=True"
    )
    tensors, meta = _load(res["samples"])
    plain, _ = _load(single["samples"])
    assert torch.equal(tensors["indices"], torch.arange(16)) and meta["num_samples"] == 16
    assert torch.equal(tensors["targets"], plain["targets"][:16])
    assert res["reported"]["num_samples"] == 16
