"""Weights-only loading (``load_from``, ``init_cfg=dict(type='Pretrained')``) from every
source type, refusal of pickled objects, key reports, the model untouched on failure,
and the resume compatibility check."""

from __future__ import annotations

import logging
import pickle
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import safetensors.torch
import timm
import torch

from acchooks.checkpoint import check_compatible, load_checkpoint, save_checkpoint
from acchooks.checkpoint.weights import load_weights, read_weights
from acchooks.errors import ConfigError
from acchooks.models import build_model
from acchooks.testing import run_config, tiny_config


def _model(num_classes: int = 4, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return timm.create_model("test_resnet", pretrained=False, num_classes=num_classes)


def _runner(model) -> SimpleNamespace:
    return SimpleNamespace(unwrapped_model=model, logger=logging.getLogger("tests.load_from"))


def _same(model, state) -> bool:
    own = model.state_dict()
    return all(torch.equal(own[k], v) for k, v in state.items())


def _snapshot(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.fixture
def source():
    return _model(seed=1).state_dict()


def _write(kind: str, tmp_path: Path, sd: dict) -> Path:
    if kind == "dir":
        return save_checkpoint(tmp_path / "epoch_1", model_state=sd)
    if kind == "safetensors":
        safetensors.torch.save_file(
            {k: v.contiguous() for k, v in sd.items()}, tmp_path / "w.safetensors"
        )
        return tmp_path / "w.safetensors"
    if kind == "pth":  # timm/mmcv style: weights under 'state_dict', DDP 'module.' prefix
        p = tmp_path / "w.pth"
        torch.save(
            {
                "state_dict": {f"module.{k}": v for k, v in sd.items()},
                "meta": {"epoch": 3, "note": "plain data is fine"},
            },
            p,
        )
        return p
    if kind == "pt":  # torch.compile'd model saved bare
        p = tmp_path / "w.pt"
        torch.save({f"_orig_mod.{k}": v for k, v in sd.items()}, p)
        return p
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["dir", "safetensors", "pth", "pt"])
def test_load_from_every_source(tmp_path, source, kind, caplog):
    path = _write(kind, tmp_path, source)
    model = _model()
    with caplog.at_level("INFO", logger="tests.load_from"):
        rep = load_weights(_runner(model), str(path))
    assert _same(model, source)
    assert not (rep.missing or rep.unexpected or rep.mismatched)
    assert f"loaded {len(source)} of the model's {len(source)} tensors from {path}" in caplog.text


def test_revise_keys_and_dict_form(tmp_path, source):
    p = tmp_path / "mm.pth"
    torch.save({"state_dict": {f"backbone.{k}": v for k, v in source.items()}}, p)
    model = _model()
    load_weights(_runner(model), dict(checkpoint=str(p), revise_keys=[(r"^backbone\.", "")]))
    assert _same(model, source)
    with pytest.raises(
        ConfigError,
        match=r"load_from: unexpected key 'revise_key'; did you mean "
        r"'revise_keys'",
    ):
        load_weights(_runner(model), dict(checkpoint=str(p), revise_key=[]))
    with pytest.raises(
        ConfigError, match=r"revise_keys: expected a list of \(regex, replacement\)"
    ):
        load_weights(_runner(model), dict(checkpoint=str(p), revise_keys="backbone"))


def test_mismatched_shapes_reported_rest_loaded(tmp_path, source, caplog):
    path = _write("dir", tmp_path, source)
    model = _model(num_classes=5)
    with caplog.at_level("WARNING", logger="tests.load_from"):
        rep = load_weights(_runner(model), str(path))
    width = model.fc.weight.shape[1]
    assert sorted(rep.mismatched) == [
        ("fc.bias", (4,), (5,)),
        ("fc.weight", (4, width), (5, width)),
    ]
    assert (
        f"2 shape mismatch(es), not loaded: fc.bias (4,) vs model (5,), fc.weight (4, {width}) "
        f"vs model (5, {width})" in caplog.text
    )
    assert _same(model, {k: v for k, v in source.items() if not k.startswith("fc.")})


def test_missing_and_unexpected_reported(tmp_path, source, caplog):
    sd = {k: v for k, v in source.items() if not k.startswith("fc.")}
    sd["extra.weight"] = torch.ones(3)
    p = tmp_path / "w.safetensors"
    safetensors.torch.save_file(sd, p)
    with caplog.at_level("WARNING", logger="tests.load_from"):
        rep = load_weights(_runner(_model()), str(p))
    assert rep.missing == ["fc.weight", "fc.bias"] and rep.unexpected == ["extra.weight"]
    assert "2 model key(s) not in" in caplog.text and "extra.weight" in caplog.text


class _Marker:
    """Unpickling this would run code: write a marker file."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (exec, (f"open({self.path!r}, 'w').write('pwned')",))


class _Plain:
    def __init__(self):
        self.x = 1


@pytest.mark.parametrize("payload", ["reduce", "plain"])
def test_pickled_objects_are_refused_never_executed(tmp_path, source, payload):
    marker = tmp_path / "marker"
    obj = _Marker(str(marker)) if payload == "reduce" else _Plain()
    p = tmp_path / "hostile.pth"
    torch.save({"state_dict": source, "extra": obj}, p)
    model = _model()
    before = _snapshot(model)
    with pytest.raises(
        ConfigError,
        match=rf"load_from: cannot read {p} with "
        r"torch.load\(weights_only=True\).*never unpickles",
    ):
        load_weights(_runner(model), str(p))
    assert not marker.exists()
    assert _same(model, before)
    with pytest.raises(ConfigError, match="model.init_cfg: cannot read"):
        build_model(
            dict(
                type="TimmClassifier",
                model_name="test_resnet",
                num_classes=4,
                init_cfg=dict(type="Pretrained", checkpoint=str(p)),
            )
        )
    assert not marker.exists()
    if payload == "reduce":  # the file really is hostile: a full unpickle runs its code
        torch.load(p, weights_only=False)
        assert marker.read_text() == "pwned"


def test_our_formats_never_unpickle(tmp_path, source, monkeypatch):
    paths = [_write("dir", tmp_path, source), _write("safetensors", tmp_path, source)]

    def boom(*args, **kwargs):
        raise AssertionError("unpickling attempted")

    for name in ("loads", "load", "Unpickler"):
        monkeypatch.setattr(pickle, name, boom)
    monkeypatch.setattr(torch, "load", boom)
    for p in paths:
        assert read_weights(str(p)).keys() == source.keys()


def test_foreign_files_only_with_weights_only(tmp_path, source, monkeypatch):
    p = _write("pth", tmp_path, source)
    calls = []
    real = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    read_weights(str(p))
    assert calls == [True]


def test_bad_files_name_the_file(tmp_path, source):
    p = _write("safetensors", tmp_path, source)
    p.write_bytes(p.read_bytes()[:100])
    with pytest.raises(ConfigError, match=rf"{p}: "):
        read_weights(str(p))
    with pytest.raises(ConfigError, match=r"load_from: checkpoint not found: .*nowhere\.pth"):
        read_weights(str(tmp_path / "nowhere.pth"))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(ConfigError, match=rf"load_from: cannot read {junk}"):
        read_weights(str(junk))
    lst = tmp_path / "list.pt"
    torch.save([torch.ones(1)], lst)
    with pytest.raises(ConfigError, match=rf"{lst} holds a list, expected a state_dict"):
        read_weights(str(lst))


def test_failed_load_leaves_model_untouched(tmp_path, source, monkeypatch):
    path = _write("dir", tmp_path, source)
    model = _model()
    before = _snapshot(model)
    # nothing fits: an error, not a silent no-op
    p = tmp_path / "other.safetensors"
    safetensors.torch.save_file({"encoder.w": torch.ones(2)}, p)
    with pytest.raises(
        ConfigError,
        match=r"no tensor of .*other\.safetensors fits the model.*"
        r"encoder\.w.*unchanged",
    ):
        load_weights(_runner(model), str(p))
    # strict: any missing key fails before the model is touched
    small = tmp_path / "nofc.safetensors"
    safetensors.torch.save_file({k: v for k, v in source.items() if "fc" not in k}, small)
    with pytest.raises(ConfigError, match=r"strict load .* missing fc\.weight, fc\.bias"):
        load_weights(_runner(model), dict(checkpoint=str(small), strict=True))
    assert _same(model, before)
    # torch fails half-way through load_state_dict: what it had copied is put back
    calls = []

    def fail(*args, **kwargs):
        calls.append(1)
        raise RuntimeError("simulated failure in the last module")

    monkeypatch.setattr(model.fc, "_load_from_state_dict", fail)
    with pytest.raises(ConfigError, match="simulated failure.*the model is unchanged"):
        load_weights(_runner(model), str(path))
    assert calls and _same(model, before)
    assert not torch.equal(model.state_dict()["conv1.0.weight"], source["conv1.0.weight"])


def test_init_cfg_prefix_loads_one_submodule(tmp_path, source):
    # an mmcls-style checkpoint: the classifier's weights under backbone./head.
    p = tmp_path / "mmcls.pth"
    torch.save(
        {
            "state_dict": {
                **{f"backbone.{k}": v for k, v in source.items() if "fc" not in k},
                "head.fc.weight": torch.zeros(9, 32),
                "head.fc.bias": torch.zeros(9),
            }
        },
        p,
    )
    model, _ = build_model(
        dict(
            type="TimmClassifier",
            model_name="test_resnet",
            num_classes=4,
            init_cfg=dict(type="Pretrained", checkpoint=str(p), prefix="backbone."),
        )
    )
    assert _same(model, {k: v for k, v in source.items() if "fc" not in k})
    assert not torch.equal(model.fc.weight, source["fc.weight"])  # the head stays initialised
    # a list applies in order; prefix without the dot works as in mmcv
    head = tmp_path / "head.safetensors"
    safetensors.torch.save_file(
        {"cls.fc.weight": source["fc.weight"].clone(), "cls.fc.bias": source["fc.bias"].clone()},
        head,
    )
    model, _ = build_model(
        dict(
            type="TimmClassifier",
            model_name="test_resnet",
            num_classes=4,
            init_cfg=[
                dict(type="Pretrained", checkpoint=str(p), prefix="backbone"),
                dict(type="Pretrained", checkpoint=str(head), prefix="cls"),
            ],
        )
    )
    assert _same(model, source)


@pytest.mark.parametrize(
    "init_cfg, message",
    [
        (
            dict(type="Pretrained", checkpoint="{p}", prefix="neck."),
            r"model.init_cfg: no key of .* starts with prefix 'neck\.'; its keys start with backbone\.",
        ),
        (
            dict(type="Kaiming"),
            r"model.init_cfg: 'Kaiming' is not supported; acchooks supports "
            r"dict\(type='Pretrained'",
        ),
        (
            dict(type="Pretrained", checkpoint="{p}", prefx="x"),
            r"model.init_cfg: unexpected key 'prefx'; did you mean 'prefix'",
        ),
        (
            dict(type="Pretrained", checkpoint="missing.pth"),
            r"model.init_cfg.checkpoint: checkpoint not found: missing\.pth",
        ),
    ],
)
def test_init_cfg_errors(tmp_path, source, init_cfg, message):
    p = tmp_path / "mm.pth"
    torch.save({f"backbone.{k}": v for k, v in source.items()}, p)
    init_cfg = {k: (v.format(p=p) if isinstance(v, str) else v) for k, v in init_cfg.items()}
    with pytest.raises(ConfigError, match=message):
        build_model(
            dict(type="TimmClassifier", model_name="test_resnet", num_classes=4, init_cfg=init_cfg)
        )


def test_init_cfg_and_load_from_through_a_run(tmp_path, source):
    p = _write("safetensors", tmp_path, source)
    for key, value in [
        ("model", dict(init_cfg=dict(type="Pretrained", checkpoint=str(p)))),
        ("load_from", str(p)),
    ]:
        work = tmp_path / key
        runner = run_config(
            tiny_config(
                work,
                **{key: value},
                runner=dict(max_epochs=1),
                optimizer=dict(lr=0.0, momentum=0.0),
            )
        )
        got = runner.unwrapped_model.state_dict()
        for k, v in source.items():  # lr 0: parameters stay as loaded
            if "running" not in k and "num_batches" not in k:
                assert torch.equal(got[k], v), (key, k)


# ------------------------------------------------------------ resume compatibility
def _ckpt(tmp_path, model, opt) -> object:
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    opt.step()
    return load_checkpoint(
        save_checkpoint(
            tmp_path / "epoch_1", model_state=model.state_dict(), optimizer_state=opt.state_dict()
        )
    )


def test_check_compatible(tmp_path):
    model = _model()
    ckpt = _ckpt(tmp_path, model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
    same = _model(seed=3)
    assert (
        check_compatible(ckpt, same, torch.optim.SGD(same.parameters(), lr=0.1, momentum=0.9)) == []
    )

    wider = _model(num_classes=5)
    problems = check_compatible(
        ckpt, wider, torch.optim.SGD(wider.parameters(), lr=0.1, momentum=0.9)
    )
    width = model.fc.weight.shape[1]
    assert problems[0] == (
        f"{ckpt.path}/model.safetensors: 2 shape mismatch(es): fc.weight "
        f"(4, {width}) vs model (5, {width}), fc.bias (4,) vs model (5,)"
    )
    assert "optimizer.json: 2 state tensor(s) do not fit the parameters" in problems[1]

    other = timm.create_model("test_vit", pretrained=False, num_classes=4)
    problems = check_compatible(ckpt, other, None)
    assert "model key(s) missing from the checkpoint: cls_token" in problems[0]
    assert re.search(
        r"model.safetensors: \d+ checkpoint key\(s\) the model does not have: "
        r".*num_batches_tracked .* and \d+ more$",
        problems[1],
    )

    adam = torch.optim.AdamW(same.parameters())
    (problem,) = check_compatible(ckpt, same, adam)
    assert problem.startswith(f"{ckpt.path}/optimizer.json: param_groups[0] has hyper-parameters")
    assert "'dampening'" in problem and "'betas'" in problem and "another optimizer type" in problem

    two = torch.optim.SGD(
        [{"params": list(same.parameters())[:3]}, {"params": list(same.parameters())[3:]}],
        lr=0.1,
        momentum=0.9,
    )
    assert check_compatible(ckpt, same, two) == [
        f"{ckpt.path}/optimizer.json: 1 parameter group(s) saved, SGD here has 2"
    ]
