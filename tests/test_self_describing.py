"""Self-describing checkpoints: class names, eval transform and model config in the
manifest's meta; ``acchooks predict`` by the checkpoint alone; ClassNumCheck; class
names that differ on load_from / test; checkpoints from before all this."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import timm
import torch
from PIL import Image
from safetensors.torch import load_file
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, create_transform

from acchooks.checkpoint import load_checkpoint
from acchooks.checkpoint.format import manifest_digest
from acchooks.cli.main import main as acchooks
from acchooks.datasets.shapes import SHAPE_KINDS, generate_shapes
from acchooks.errors import ConfigError
from acchooks.testing import run_config, tiny_config

CLASSES = [f"c{i}_{k}" for i, k in enumerate(SHAPE_KINDS[:4])]  # sorted, not Shapes'
EVAL = dict(input_size=32, crop_pct=0.9, interpolation="bicubic")


def _folder(root: Path, n: int, seed: int, names: list[str] = CLASSES) -> Path:
    """``root/<class>/<i>.png``: generated shapes of 36 px (the crop has work to do)."""
    images, labels = generate_shapes(n, 36, len(names), seed)
    for i, (im, label) in enumerate(zip(images, labels, strict=True)):
        (root / names[label]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(im).save(root / names[label] / f"{i:03d}.png")
    return root


def _image_folder(root: Path, **kw) -> dict:
    return dict(type="ImageFolder", root=str(root), **kw)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny run on an ImageFolder; its work dir, config file and images."""
    base = tmp_path_factory.mktemp("describe")
    train = _folder(base / "train", 32, 0)
    val = _folder(base / "val", 12, 1)
    cfg = tiny_config(
        base / "work",
        data=dict(
            train=_image_folder(train, input_size=32, is_training=True, _delete_=True),
            val=_image_folder(val, **EVAL, _delete_=True),
        ),
        runner=dict(max_epochs=1),
        checkpoint_config=dict(interval=1),
    )
    run_config(cfg)
    cfg.dump(base / "run_config.py")
    return base / "work", base / "run_config.py", val


def _rewrite_meta(src: Path, dst: Path, edit) -> Path:
    """A copy of checkpoint ``src`` at ``dst`` whose manifest meta ``edit`` changed (the
    manifest's own digest recomputed, as acchooks writes it)."""
    shutil.copytree(src, dst)
    manifest = json.loads((dst / "manifest.json").read_text())
    edit(manifest["meta"])
    manifest.pop("manifest_digest")
    manifest["manifest_digest"] = {"xxh3_128": manifest_digest(manifest)}
    (dst / "manifest.json").write_text(json.dumps(manifest))
    return dst


def test_checkpoint_records_classes_transform_and_model(trained):
    work, _, _ = trained
    meta = load_checkpoint(work / "epoch_1").meta
    assert meta["classes"] == CLASSES
    assert meta["eval_transform"] == dict(
        input_size=[3, 32, 32],
        mean=list(IMAGENET_DEFAULT_MEAN),
        std=list(IMAGENET_DEFAULT_STD),
        crop_pct=0.9,
        interpolation="bicubic",
    )
    assert meta["model"] == dict(
        type="TimmClassifier", model_name="test_resnet", num_classes=4, pretrained=False
    )


def test_bad_metadata_is_named(trained, tmp_path):
    work, _, _ = trained

    def edit(meta):
        meta["classes"] = "c0_circle"

    bad = _rewrite_meta(work / "epoch_1", tmp_path / "epoch_1", edit)
    with pytest.raises(ConfigError, match="field 'meta.classes' should be a list of strings"):
        load_checkpoint(bad)


def _logits_top(work: Path, files: list[Path]) -> tuple[list[str], torch.Tensor]:
    """Top-1 names and softmax scores computed here, with the transform built from the
    val set's settings (not from what the checkpoint says)."""
    model = timm.create_model("test_resnet", pretrained=False, num_classes=4)
    model.load_state_dict(load_file(work / "epoch_1" / "model.safetensors"))
    tf = create_transform(**EVAL, is_training=False)  # ImageNet mean/std: ImageFolder's
    x = torch.stack([tf(Image.open(f).convert("RGB")) for f in files])
    with torch.no_grad():
        scores = model.eval()(x).softmax(-1)
    return [CLASSES[i] for i in scores.argmax(-1).tolist()], scores


def test_predict_matches_the_models_logits(trained, tmp_path, capsys):
    work, _, val = trained
    out = tmp_path / "preds.json"
    rc = acchooks(["predict", "--checkpoint", str(work), "--images", str(val), "--topk", "2"]
                  + ["--out", str(out), "--batch-size", "5"])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    preds = json.loads(out.read_text())["predictions"]
    files = sorted(val.rglob("*.png"))
    assert [p["image"] for p in preds] == [str(f) for f in files]
    names, scores = _logits_top(work, files)
    assert [p["classes"][0] for p in preds] == names
    top2 = scores.topk(2, -1).values
    assert torch.allclose(torch.tensor([p["scores"] for p in preds]), top2, atol=1e-5)
    printed = capsys.readouterr().out
    assert f"{files[0]}: {names[0]} " in printed


def test_multi_label_checkpoints_predict_per_class_sigmoids(trained, tmp_path, capsys):
    from acchooks.testing import multilabel  # noqa: F401 - registers MultiLabelShapes

    work, _, val = trained
    assert load_checkpoint(work / "epoch_1").meta["multi_label"] is False
    multi = dict(type="MultiLabelShapes", img_size=32, num_classes=4, _delete_=True)
    cfg = tiny_config(
        tmp_path / "multi",
        model=dict(loss=dict(type="BinaryCrossEntropy")),
        data=dict(train=dict(multi, num_samples=16, seed=0, is_training=True), val=None),
        runner=dict(max_epochs=1),
        checkpoint_config=dict(interval=1),
    )
    run_config(cfg)
    assert load_checkpoint(tmp_path / "multi" / "epoch_1").meta["multi_label"] is True
    # the single-label run's weights, read as multi-label: sigmoids, not a softmax
    relabelled = _rewrite_meta(
        work / "epoch_1", tmp_path / "ml" / "epoch_1", lambda m: m.update(multi_label=True)
    )
    out = tmp_path / "preds.json"
    argv = ["predict", "--checkpoint", str(relabelled), "--images", str(val), "--topk", "2"]
    assert acchooks([*argv, "--out", str(out)]) == 0, capsys.readouterr().err
    files = sorted(val.rglob("*.png"))
    model = timm.create_model("test_resnet", pretrained=False, num_classes=4)
    model.load_state_dict(load_file(work / "epoch_1" / "model.safetensors"))
    tf = create_transform(**EVAL, is_training=False)
    with torch.no_grad():
        logits = model.eval()(torch.stack([tf(Image.open(f).convert("RGB")) for f in files]))
    got = torch.tensor([p["scores"] for p in json.loads(out.read_text())["predictions"]])
    assert torch.allclose(got, logits.sigmoid().topk(2, -1).values, atol=1e-5)


def test_head_that_does_not_match_the_classes_is_a_config_error(tmp_path):
    cfg = tiny_config(tmp_path / "w", model=dict(num_classes=3))
    with pytest.raises(ConfigError) as e:
        run_config(cfg)
    msg = str(e.value)
    assert "head has 3 outputs but data.train has 4 classes" in msg
    assert "set model.num_classes=4" in msg
    assert not list((tmp_path / "w").glob("epoch_*"))  # before training


def test_older_checkpoint_loads_and_predict_says_what_is_missing(trained, tmp_path, capsys):
    work, config, val = trained

    def edit(meta):
        for key in ("classes", "eval_transform", "model"):
            del meta[key]

    old = _rewrite_meta(work / "epoch_1", tmp_path / "epoch_1", edit)
    assert load_checkpoint(old).meta["epoch"] == 1  # still loads
    images = ["--images", str(next(val.rglob("*.png")))]
    assert acchooks(["predict", "--checkpoint", str(old), *images]) == 2
    err = capsys.readouterr().err
    assert "records no model and no eval_transform" in err and "--config" in err
    assert acchooks(["predict", "--checkpoint", str(old), *images, "--config", str(config)]) == 0
    captured = capsys.readouterr()
    assert "records no class names" in captured.err
    names, _ = _logits_top(work, [Path(images[1])])
    assert captured.out.split(": ")[1].startswith(str(CLASSES.index(names[0])) + " ")


def test_class_names_that_differ_warn_and_another_number_fails_test(trained, tmp_path, capsys):
    work, config, _ = trained
    other = _folder(tmp_path / "other", 8, 2, names=["a", "b", "c", "d"])
    cfg = tiny_config(
        tmp_path / "w",
        data=dict(train=_image_folder(other, input_size=32, _delete_=True)),
        runner=dict(max_epochs=1),
        load_from=str(work / "epoch_1"),
    )
    run_config(cfg)
    (log,) = (tmp_path / "w").glob("*.log")
    assert "class names differ (index: checkpoint vs dataset) 0: 'c0_circle' vs 'a'" in (
        log.read_text()
    )
    test = ["test", "--config", str(config), "--checkpoint", str(work / "epoch_1")]
    test += ["--work-dir", str(tmp_path)]
    assert acchooks([*test, "--cfg-options", f"data.val.root={other}"]) == 0
    assert "warning: --checkpoint" in (err := capsys.readouterr().err)
    assert "vs data.val: class names differ" in err
    fewer = _folder(tmp_path / "fewer", 6, 3, names=["a", "b", "c"])
    assert acchooks([*test, "--cfg-options", f"data.val.root={fewer}"]) == 2
    assert "the checkpoint has 4 classes, the dataset 3" in capsys.readouterr().err
