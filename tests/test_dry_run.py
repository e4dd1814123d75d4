"""train.py --dry-run: builds everything, 2 train + 2 val iterations, a checkpoint saved
and reloaded in a temporary directory, the hook tables printed; nothing in the work dir."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from acchooks.cli.train import main

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "data" / "tiny_cli.py"


def snapshot(d: Path) -> dict:
    return {
        str(p.relative_to(d)): (p.stat().st_mtime_ns, p.stat().st_size)
        for p in sorted(d.rglob("*"))
    }


def test_dry_run_leaves_the_work_dir_alone(tmp_path):
    work = tmp_path / "work"  # a previous run's good checkpoint is there
    (work / "epoch_2").mkdir(parents=True)
    (work / "epoch_2" / "model.safetensors").write_bytes(b"good weights")
    (work / "latest").write_text(str(work / "epoch_2"))
    before = snapshot(work)
    cfg = tmp_path / "dry.py"  # a val workflow phase too: both val paths run
    cfg.write_text(f"_base_ = '{TINY}'\nworkflow = [('train', 1), ('val', 1)]\n")
    t0 = time.perf_counter()
    res = subprocess.run(
        [
            sys.executable,
            str(ROOT / "train.py"),
            "--config",
            str(cfg),
            "--work-dir",
            str(work),
            "--dry-run",
        ],
        cwd=tmp_path,
        text=True,
        capture_output=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    wall = time.perf_counter() - t0
    out = res.stdout
    assert res.returncode == 0, out[-3000:] + res.stderr[-3000:]
    assert snapshot(work) == before  # nothing written, nothing overwritten
    assert not (tmp_path / "work_dirs").exists()
    assert "Hooks will be executed in the following order:" in out
    assert "Hook timing (every call timed):" in out
    for hook in ("OptimizerHook", "EvalHook", "CheckpointHook", "TextLoggerHook"):
        assert re.search(rf"^{hook} +\w+ +[\d.]+ +[\d.]+% +\d+ +[\d.]+$", out, re.M), hook
    # two train iterations (of 4), EvalHook on 2 val batches, a val phase of 2 batches
    assert "Epoch [1][2/2]" in out and "Epoch [1][3/" not in out
    assert re.search(r"Epoch\(val\) \[1\]\[2\]\taccuracy_top-1: ", out)
    assert re.search(r"Epoch\(val\) \[1\]\[2\]\tloss: ", out)
    assert "resumed from" in out
    m = re.search(
        r"Dry run OK in ([\d.]+) s: .*\(manifest\.json, model\.safetensors, "
        r"optimizer",
        out,
    )
    assert m, out[-2000:]
    tmp = re.search(r"all in (\S+) \(removed at the end\)", out).group(1)
    assert not os.path.exists(tmp)
    # seconds once imports are done (the wall time adds ~5-20 s of importing torch & co.)
    assert float(m.group(1)) < 15, (m.group(1), wall)


BROKEN = """
from acchooks import DATASETS
from acchooks.datasets import Shapes


@DATASETS.register_module()
class BrokenShapes(Shapes):
    def __getitem__(self, i):
        if i >= 3:
            raise OSError(f"image {i}: truncated file")
        return super().__getitem__(i)
"""


def test_dry_run_fails_clearly_on_broken_val_data(tmp_path, monkeypatch, capsys):
    (tmp_path / "broken_data.py").write_text(BROKEN)
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = tmp_path / "broken.py"
    cfg.write_text(
        f"_base_ = '{TINY}'\n"
        "custom_imports = dict(imports=['broken_data'])\n"
        "data = dict(val=dict(type='BrokenShapes'))\n"
    )
    work = tmp_path / "work"
    rc = main(["--config", str(cfg), "--work-dir", str(work), "--dry-run"])
    err = capsys.readouterr().err
    assert rc == 1
    last = err.strip().splitlines()[-1]
    assert last.startswith(
        "acchooks: dry run FAILED in hook EvalHook.after_train_epoch "
        "(train phase): OSError: image 3: truncated file"
    ), last
    assert not work.exists()
