"""Every runnable config in configs/ passes ``train.py --dry-run`` on local generated data:
an ImageFolder of a few small generated JPEGs in place of ImageNet, and a tiny timm test
model of the same family in place of the real one, overridden with ``--cfg-options``
only where the config names data or a model this machine cannot have."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from acchooks.cli.train import main as train_main
from acchooks.config import Config

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.py"))
CLASSES = 5  # >= 5 for the configs' top-5 accuracy


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    """<root>/<class>/<image>.JPEG: 3 random 40x48 JPEGs for each of 5 classes."""
    root = tmp_path_factory.mktemp("imagefolder")
    rng = np.random.default_rng(0)
    for c in range(CLASSES):
        (root / f"n0{c}").mkdir()
        for i in range(3):
            pixels = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / f"n0{c}" / f"img_{i}.JPEG", quality=90)
    return root


def local_overrides(cfg: Config, images: Path) -> list[str]:
    """--cfg-options that keep the recipe but point it at what this machine has."""
    opts = ["data.samples_per_gpu=4", "data.workers_per_gpu=0", "accelerator.mixed_precision=no"]
    folders = [
        s for s in ("train", "val", "test") if cfg.data.get(s, {}).get("type") == "ImageFolder"
    ]
    for split in folders:
        opts += [f"data.{split}.root={images}", f"data.{split}.input_size=32"]
    name = cfg.model.get("model_name", "")
    if cfg.model.get("type") == "TimmClassifier" and not name.startswith("test_"):
        vit = any(k in name for k in ("vit", "deit"))
        opts.append(f"model.model_name={'test_vit' if vit else 'test_resnet'}")
        if vit:
            opts.append("model.img_size=32")
    if folders:
        opts.append(f"model.num_classes={CLASSES}")
    if cfg.get("sampler") is not None:  # 15 images: no rounding of the epoch to 256
        opts.append("sampler.selected_round=0")
    return opts


def test_configs_are_shipped():
    names = {p.name for p in CONFIGS}
    assert {"quickstart.py", "resnet50_8xb32_in1k.py", "deit_small_4xb256_in1k.py"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_config_dry_runs(path, image_folder, tmp_path, capsys):
    cfg = Config.fromfile(path)
    work = tmp_path / "work"
    argv = ["--config", str(path), "--work-dir", str(work), "--dry-run"]
    rc = train_main([*argv, "--cfg-options", *local_overrides(cfg, image_folder)])
    out, err = capsys.readouterr()
    assert rc == 0, (out + err)[-4000:]
    assert not work.exists()  # a dry run writes nothing


def test_the_deit_recipe_is_deits(capsys):
    """The recipe's settings, as DeiT trains them (read back through the config check's
    view, not the file's text)."""
    cfg = Config.fromfile(ROOT / "configs" / "deit_small_4xb256_in1k.py")
    assert cfg.model.model_name == "deit_small_patch16_224" and cfg.model.drop_path_rate == 0.1
    train = cfg.data.train
    assert (train.auto_augment, train.re_prob) == ("rand-m9-mstd0.5-inc1", 0.25)
    assert cfg.sampler == dict(type="RepeatAugSampler", num_repeats=3)
    assert (cfg.mixup.mixup_alpha, cfg.mixup.cutmix_alpha, cfg.mixup.label_smoothing) == (
        0.8,
        1.0,
        0.1,
    )
    assert cfg.custom_hooks[0].type == "EMAHook" and cfg.custom_hooks[0].decay == 0.99996
    assert cfg.runner.max_epochs == 300 and cfg.lr_config.warmup_iters == 5
    # AdamW lr 5e-4 x global batch / 512: 1e-3 at DeiT's 4 x 256, 2.5e-4 on one process
    from acchooks.optim.lr_scaling import lr_scaling

    assert cfg.optimizer.weight_decay == 0.05
    assert lr_scaling(cfg, 256, 4, 1).lr == 1e-3
    assert lr_scaling(cfg, 256, 1, 1).lr == 2.5e-4
