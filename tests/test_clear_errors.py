"""One clear message, not a traceback, for what a user gets wrong (issue 13, item 6).

Every case goes through the real command line and checks the exit status and the one
message: wrong config values (before any work), an unwritable work dir or out_dir,
a corrupt image, ``nonfinite='raise'``, and ``acchooks test --checkpoint`` with the
``latest`` pointer, a work dir or a file it must not unpickle.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "data" / "tiny_cli.py"
ENV = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests' / 'data'}"}


def cli(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )


def the_error(res: subprocess.CompletedProcess) -> str:
    """The one error message of a run that failed cleanly (no traceback anywhere): from
    its ``acchooks: error:`` to the end of the output."""
    out = res.stdout + res.stderr
    assert "Traceback" not in out, out[-3000:]
    assert out.count("acchooks: error:") == 1, out[-3000:]
    return out[out.index("acchooks: error:") :]


# ---------------------------------------------------------------- config values
@pytest.mark.parametrize(
    "option, words",
    [
        ("optimizer.lr=fast", ["optimizer.lr", "a number >= 0", "'fast'"]),
        ("optimizer.lr=-1", ["optimizer.lr", "a number >= 0", "-1"]),
        ("optimizer.momentum=fast", ["optimizer.momentum", "'fast'"]),
        ("optimizer.weight_decay=[1]", ["optimizer.weight_decay", "[1]"]),
        ("data.samples_per_gpu=0", ["data.samples_per_gpu", "a positive int", "0"]),
        ("data.samples_per_gpu=-4", ["data.samples_per_gpu", "a positive int", "-4"]),
        ("data.workers_per_gpu=-1", ["data.workers_per_gpu", "an int >= 0", "-1"]),
        ("log_config.interval=0", ["log_config.interval", "a positive int", "0"]),
        ("checkpoint_config.interval=0", ["checkpoint_config.interval", "-1", "got 0"]),
        ("checkpoint_config.interval=-3", ["checkpoint_config.interval", "got -3"]),
        ("checkpoint_config.interval=fast", ["checkpoint_config.interval", "'fast'"]),
    ],
)
def test_wrong_value_is_a_config_error_before_any_work(tmp_path, option, words):
    work = tmp_path / "w"
    res = cli(
        "train.py",
        "--config",
        str(TINY),
        "--work-dir",
        str(work),
        "--cfg-options",
        option,
        cwd=tmp_path,
    )
    assert res.returncode == 2, res.stdout[-2000:] + res.stderr[-2000:]
    message = the_error(res)
    assert all(w in message for w in words), message
    assert not work.exists()  # nothing was written


def test_checkpoint_config_declaration_matches_the_hook():
    import inspect

    from acchooks.hooks.checkpoint import CheckpointHook
    from acchooks.hooks.options import CHECKPOINT_CONFIG

    params = list(inspect.signature(CheckpointHook.__init__).parameters.values())[1:]
    assert [(p.name, p.default) for p in params] == [(o.name, o.default) for o in CHECKPOINT_CONFIG]
    with pytest.raises(ValueError, match=r"checkpoint_config.interval: expected -1 or a positive"):
        CheckpointHook(interval=0)


def test_unwritable_work_dir_or_out_dir_is_a_config_error(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    cases = [
        (["--work-dir", str(blocker / "sub")], "work_dir", f"{blocker} is a file"),
        (["--work-dir", str(blocker)], "work_dir", "is a file, not a folder"),
        (
            [
                "--work-dir",
                str(tmp_path / "w"),
                "--cfg-options",
                f"checkpoint_config.out_dir={blocker}/ck",
            ],
            "checkpoint_config.out_dir",
            f"{blocker} is a file",
        ),
        (
            ["--work-dir", str(tmp_path / "w"), "--cfg-options", f"evaluation.out_dir={blocker}"],
            "evaluation.out_dir",
            "is a file, not a folder",
        ),
    ]
    for args, key, why in cases:
        res = cli("train.py", "--config", str(TINY), *args, cwd=tmp_path)
        assert res.returncode == 2, (args, res.stdout[-2000:] + res.stderr[-2000:])
        message = the_error(res)
        assert key in message and why in message, message
        assert not (tmp_path / "w").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_work_dir_is_a_config_error(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        res = cli("train.py", "--config", str(TINY), "--work-dir", str(ro / "w"), cwd=tmp_path)
    finally:
        ro.chmod(0o755)
    assert res.returncode == 2
    assert "not writable" in the_error(res)


# ---------------------------------------------------------------- the run itself
def test_nonfinite_raise_ends_with_one_message(tmp_path):
    opts = [
        "runner.max_epochs=1",
        "optimizer_config.nonfinite=raise",
        "custom_imports={'imports': ['nan_hooks']}",
        "custom_hooks=[{'type': 'NaNLossAt', 'step': 2, 'priority': 'HIGH'}]",
    ]
    work = tmp_path / "w"
    res = cli(
        "train.py",
        "--config",
        str(TINY),
        "--work-dir",
        str(work),
        "--cfg-options",
        *opts,
        cwd=tmp_path,
    )
    assert res.returncode == 1, res.stdout[-2000:] + res.stderr[-2000:]
    message = the_error(res)
    assert "non-finite loss or gradients at optimizer step 1" in message
    assert "nonfinite='skip'" in message
    assert "FloatingPointError" not in res.stdout + res.stderr


def _image_tree(root: Path, bad: str) -> Path:
    """Two classes of three 32 px images; ``root/b/<bad>`` is a truncated JPEG."""
    for c, colour in (("a", (200, 30, 30)), ("b", (30, 30, 200))):
        (root / c).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (32, 32), colour).save(root / c / f"{i}.png")
    path = root / "b" / bad
    noise = torch.randint(
        0, 256, (64, 64, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    Image.fromarray(noise.numpy()).save(path, quality=95)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # truncated
    return path


def _image_config(tmp_path: Path, workers: int) -> Path:
    root = tmp_path / "images"
    bad = _image_tree(root, "broken.jpg")
    cfg = tmp_path / "images_cfg.py"
    ds = f"dict(type='ImageFolder', root={str(root)!r}, input_size=32)"
    cfg.write_text(
        f"_base_ = [{str(TINY)!r}]\n"
        f"data = dict(_delete_=True, samples_per_gpu=4, workers_per_gpu={workers}, "
        f"train={ds}, val={ds})\n"
        "runner = dict(max_epochs=1)\n"
        "model = dict(num_classes=2)\n"
        "evaluation = dict(metric_options={'topk': (1,)})\n"
    )
    return cfg, bad


@pytest.mark.parametrize("workers", [0, 1])
def test_corrupt_image_names_the_file_and_its_index(tmp_path, workers):
    cfg, bad = _image_config(tmp_path, workers)
    res = cli("train.py", "--config", str(cfg), "--work-dir", str(tmp_path / "w"), cwd=tmp_path)
    assert res.returncode == 1, res.stdout[-2000:] + res.stderr[-2000:]
    message = the_error(res)
    # sorted: a/0..2.png are 0-2, b/0..2.png 3-5, b/broken.jpg is sample 6
    assert str(bad) in message and "sample 6" in message, message
    assert "truncated" in message and "ImageFolder" in message


# ---------------------------------------------------------------- acchooks test
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    work = tmp_path_factory.mktemp("trained")
    res = cli(
        "train.py",
        "--config",
        str(TINY),
        "--work-dir",
        str(work),
        "--cfg-options",
        "runner.max_epochs=1",
        cwd=work,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    return work


def _test(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "acchooks", "test", "--config", str(TINY), "--split", "val", *args],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_test_cli_follows_latest_and_work_dir(trained, tmp_path):
    for ckpt in (trained / "latest", trained):
        out = tmp_path / "res.json"
        res = _test("--checkpoint", str(ckpt), "--out", str(out), cwd=tmp_path)
        assert res.returncode == 0, res.stderr[-2000:]
        assert "epoch_1" in out.read_text()  # the checkpoint the pointer names


def test_test_cli_dangling_pointer_fails_before_building(tmp_path):
    work = tmp_path / "w"
    work.mkdir()
    (work / "latest").write_text("epoch_9\n")
    res = _test("--checkpoint", str(work / "latest"), cwd=tmp_path)
    assert res.returncode == 2
    message = the_error(res)
    assert "--checkpoint" in message and "epoch_9" in message and "load_from" not in message
    assert "--checkpoint" in the_error(
        _test("--checkpoint", str(tmp_path / "nothing"), cwd=tmp_path)
    )


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.slow
def test_no_message_suggests_unsafe_loading(tmp_path):
    evil = tmp_path / "evil.pth"
    torch.save({"a": _Evil()}, evil)
    text = tmp_path / "notes.pth"
    text.write_text("hello\n")
    for path in (evil, text):
        res = _test("--checkpoint", str(path), cwd=tmp_path)
        assert res.returncode == 2
        message = the_error(res)
        assert (
            "weights_only=False" not in message and "`weights_only` set to `False`" not in message
        )
        assert "pwned" not in res.stdout
        assert str(path) in message and "--checkpoint" in message
    res = cli(
        "train.py",
        "--config",
        str(TINY),
        "--work-dir",
        str(tmp_path / "w"),
        "--load-from",
        str(evil),
        cwd=tmp_path,
    )
    assert res.returncode == 2
    assert "weights_only` set to `False" not in the_error(res) and "pwned" not in res.stdout


def test_test_cli_weights_that_do_not_fit_give_one_short_message(tmp_path):
    foreign = tmp_path / "foreign.pth"
    torch.save({"fc.weight": torch.zeros(3, 3), "other": torch.zeros(1)}, foreign)
    message = the_error(_test("--checkpoint", str(foreign), cwd=tmp_path))
    assert "--checkpoint" in message and len(message) < 600, message
