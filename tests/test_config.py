"""Tests for acchooks.config: loading, inheritance, overrides, dumping, custom imports."""

from __future__ import annotations

import argparse
import copy
import logging
import pickle
import sys
import textwrap
from pathlib import Path

import pytest

from acchooks.config import (
    Config,
    ConfigDict,
    DictAction,
    import_custom_modules,
    parse_cfg_options,
)
from acchooks.errors import ConfigError

CONFIGS = Path(__file__).parent / "data" / "configs"


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


# ----------------------------------------------------------------------------- ConfigDict


def test_configdict_attribute_access_and_nested_conversion():
    d = ConfigDict(model=dict(type="A", sub=[dict(x=1), (dict(y=2),)]))
    assert d.model.type == "A"
    assert isinstance(d.model.sub[0], ConfigDict) and d.model.sub[0].x == 1
    assert isinstance(d.model.sub[1], tuple) and d.model.sub[1][0].y == 2
    d.new = dict(a=1)
    assert isinstance(d["new"], ConfigDict) and d.new.a == 1
    plain = d.to_dict()
    assert type(plain["model"]) is dict and type(plain["model"]["sub"][0]) is dict
    assert type(plain["model"]["sub"][1]) is tuple


def test_configdict_attribute_miss_suggests_closest():
    d = ConfigDict(optimizer=dict(lr=0.1))
    with pytest.raises(
        AttributeError, match=r"no config key 'optimiser'; did you mean 'optimizer'"
    ):
        _ = d.optimiser
    assert not hasattr(d, "nothing_like_it")


def test_configdict_pickle_and_deepcopy():
    d = ConfigDict(a=dict(b=[1, (2, 3)]))
    for clone in (pickle.loads(pickle.dumps(d)), copy.deepcopy(d)):
        assert clone == d and isinstance(clone, ConfigDict) and isinstance(clone.a, ConfigDict)
        assert clone.a is not d.a
    assert isinstance(d.copy(), ConfigDict)


# ----------------------------------------------------------------------------- loading


def test_list_of_bases_and_overrides_from_fixture():
    cfg = Config.fromfile(CONFIGS / "resnet18_imagenet.py")
    assert "_base_" not in cfg
    assert cfg.model.num_classes == 10 and cfg.model.model_name == "resnet18"  # recursive merge
    assert cfg.model.loss.type == "CrossEntropyLoss"
    assert cfg.data.samples_per_gpu == 64 and cfg.data.workers_per_gpu == 2
    assert cfg.data.train.root == "data/imagenet/train"
    assert cfg.optimizer.to_dict() == {"type": "AdamW", "lr": 1e-3}  # _delete_ replaced
    assert cfg.workflow == [("train", 1), ("val", 1)]
    assert cfg.evaluation.metric_options.topk == (1, 5)
    assert cfg.filename == str((CONFIGS / "resnet18_imagenet.py").resolve())
    assert "samples_per_gpu=64" in cfg.text and "EpochBasedRunner" in cfg.text  # own + bases


def test_three_level_inheritance():
    cfg = Config.fromfile(CONFIGS / "resnet18_finetune.py")
    assert cfg.model.pretrained is True and cfg.model.num_classes == 10
    assert cfg.lr_config.to_dict() == {"policy": "step", "step": [10]}
    assert cfg.runner.to_dict() == {"type": "EpochBasedRunner", "max_epochs": 20}
    assert cfg.optimizer.type == "AdamW"


def test_single_base_string(tmp_path):
    write(tmp_path, "base.py", "a = dict(x=1, y=dict(z=2))\nb = 3\n")
    path = write(tmp_path, "sub/child.py", "_base_ = '../base.py'\na = dict(y=dict(w=4))\n")
    cfg = Config.fromfile(path)
    assert cfg.to_dict() == {"a": {"x": 1, "y": {"z": 2, "w": 4}}, "b": 3}


def test_delete_nested_and_removed_everywhere(tmp_path):
    write(tmp_path, "base.py", "m = dict(head=dict(type='A', k=1), neck=dict(type='N', p=2))\n")
    path = write(
        tmp_path,
        "c.py",
        """\
        _base_ = 'base.py'
        m = dict(head=dict(_delete_=True, type='B'), extra=dict(_delete_=True, q=1))
    """,
    )
    cfg = Config.fromfile(path)
    assert cfg.m.to_dict() == {
        "head": {"type": "B"},
        "neck": {"type": "N", "p": 2},
        "extra": {"q": 1},
    }


def test_non_dict_override_replaces(tmp_path):
    write(tmp_path, "base.py", "a = dict(x=1)\nb = [1, 2]\n")
    cfg = Config.fromfile(write(tmp_path, "c.py", "_base_ = 'base.py'\na = None\nb = [3]\n"))
    assert cfg.a is None and cfg.b == [3]


def test_duplicate_key_across_bases(tmp_path):
    write(tmp_path, "b1.py", "optimizer = dict(lr=1)\n")
    write(tmp_path, "b2.py", "optimizer = dict(lr=2)\n")
    path = write(tmp_path, "c.py", "_base_ = ['b1.py', 'b2.py']\n")
    with pytest.raises(ConfigError, match=r"'optimizer'.*b1\.py.*b2\.py"):
        Config.fromfile(path)


def test_circular_base(tmp_path):
    write(tmp_path, "a.py", "_base_ = 'b.py'\n")
    write(tmp_path, "b.py", "_base_ = 'a.py'\n")
    with pytest.raises(ConfigError, match=r"circular _base_ chain: .*a\.py -> .*b\.py -> .*a\.py"):
        Config.fromfile(tmp_path / "a.py")


def test_missing_base_names_referrer(tmp_path):
    write(tmp_path, "base_model.py", "x = 1\n")
    path = write(tmp_path, "c.py", "_base_ = 'base_modle.py'\n")
    with pytest.raises(FileNotFoundError) as info:
        Config.fromfile(path)
    msg = str(info.value)
    assert isinstance(info.value, ConfigError)
    assert "base_modle.py" in msg and str(path) in msg and "base_model.py" in msg


def test_missing_config_file(tmp_path):
    write(tmp_path, "resnet18.py", "x = 1\n")
    with pytest.raises(ConfigError, match=r"config file not found: .*resnet81\.py.*resnet18\.py"):
        Config.fromfile(tmp_path / "resnet81.py")


def test_syntax_error_names_file_and_line(tmp_path):
    path = write(tmp_path, "bad.py", "a = 1\nb = dict(x=1,,)\n")
    with pytest.raises(ConfigError, match=r"syntax error in config .*bad\.py, line 2"):
        Config.fromfile(path)


def test_runtime_error_names_file_and_line(tmp_path):
    path = write(tmp_path, "bad.py", "a = 1\n\nb = undefined_name + 1\n")
    with pytest.raises(ConfigError, match=r"bad\.py, line 3: NameError"):
        Config.fromfile(path)


def test_non_data_names_skipped_and_tuples_kept(tmp_path):
    path = write(
        tmp_path,
        "c.py",
        """\
        import os
        from collections import OrderedDict
        def helper(x):
            return x * 2
        class Thing:
            pass
        __private__ = 5
        root = os.path.join('data', 'x')
        workflow = [('train', 1), ('val', 1)]
        evaluation = dict(metric_options={'topk': (1, 5)})
        size = helper(112)
        print_ok = print
    """,
    )
    cfg = Config.fromfile(path)
    assert set(cfg.keys()) == {"root", "workflow", "evaluation", "size"}
    assert cfg.workflow == [("train", 1), ("val", 1)] and isinstance(cfg.workflow[0], tuple)
    assert isinstance(cfg.evaluation.metric_options.topk, tuple)
    assert cfg.size == 224 and cfg["root"] == "data/x"
    assert cfg.to_dict()["evaluation"]["metric_options"]["topk"] == (1, 5)


def test_object_values_are_reported(tmp_path):
    path = write(tmp_path, "c.py", "import pathlib\nmodel = dict(root=pathlib.Path('x'))\n")
    with pytest.raises(ConfigError, match=r"model\.root: .*Path is not config data"):
        Config.fromfile(path)


def test_config_dict_interface_and_attribute_miss(tmp_path):
    cfg = Config(dict(model=dict(type="A"), seed=0), filename="x.py")
    assert "model" in cfg and len(cfg) == 2 and list(cfg) == ["model", "seed"]
    assert cfg.get("missing", 5) == 5 and dict(cfg.items())["seed"] == 0
    cfg.work_dir = "out"
    cfg["seed"] = 1
    assert cfg.work_dir == "out" and cfg.seed == 1
    with pytest.raises(AttributeError, match=r"'modle'; did you mean 'model'"):
        _ = cfg.modle
    clone = cfg.copy()
    clone.model.type = "B"
    assert cfg.model.type == "A"
    restored = pickle.loads(pickle.dumps(cfg))
    assert restored == cfg and restored.filename == "x.py"
    with pytest.raises(TypeError):
        Config([1, 2])


# ----------------------------------------------------------------------------- dump


def test_dump_round_trip(tmp_path):
    cfg = Config.fromfile(CONFIGS / "resnet18_finetune.py")
    cfg.merge_from_dict({"extra": {"inf_clip": float("inf"), 1: "int key", "s": "x" * 120}})
    out = tmp_path / "work" / "nested" / "config.py"
    cfg.dump(out)
    again = Config.fromfile(out)
    assert again.to_dict() == cfg.to_dict()
    assert again.workflow[0] == ("train", 1) and isinstance(
        again.evaluation.metric_options.topk, tuple
    )
    assert cfg.pretty_text == again.pretty_text  # deterministic
    assert cfg.pretty_text.startswith("from math import inf, nan")
    assert Config(dict(a=1)).pretty_text == "a = 1\n"


def test_dump_rejects_non_identifier_top_key():
    with pytest.raises(ConfigError, match="not a valid Python name"):
        _ = Config({"bad-key": 1}).pretty_text


# ----------------------------------------------------------------------------- overrides


def test_parse_cfg_options_types():
    opts = parse_cfg_options(
        [
            "a.b=1",
            "f=1e-3",
            "t=true",
            "T=False",
            "n=None",
            "nl=null",
            "l=[1,2]",
            "tu=(1,2)",
            "nest=[[1,2],[3,(4,5)]]",
            "c=x,y",
            "cn=1,2.5",
            "s=resnet50.a1_in1k",
            'q="str"',
            "p=/data/x",
            "neg=-3",
            "names=[train,val]",
            "wf=[(train,1),(val,1)]",
            "d={'a': true}",
            "eq=a=b",
            "empty=",
        ]
    )
    assert opts == {
        "a.b": 1,
        "f": 0.001,
        "t": True,
        "T": False,
        "n": None,
        "nl": None,
        "l": [1, 2],
        "tu": (1, 2),
        "nest": [[1, 2], [3, (4, 5)]],
        "c": ["x", "y"],
        "cn": [1, 2.5],
        "s": "resnet50.a1_in1k",
        "q": "str",
        "p": "/data/x",
        "neg": -3,
        "names": ["train", "val"],
        "wf": [("train", 1), ("val", 1)],
        "d": {"a": True},
        "eq": "a=b",
        "empty": "",
    }
    assert isinstance(opts["tu"], tuple) and isinstance(opts["wf"][0], tuple)


def test_parse_cfg_options_rejects_missing_equals():
    with pytest.raises(ConfigError, match=r"'optimizer\.lr' is not of the form key=value"):
        parse_cfg_options(["optimizer.lr"])


def test_dict_action_accumulates_and_reports():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cfg-options", nargs="+", action=DictAction)
    args = parser.parse_args(["--cfg-options", "a=1", "b=x,y", "--cfg-options", "c=[1]"])
    assert args.cfg_options == {"a": 1, "b": ["x", "y"], "c": [1]}
    assert parser.parse_args([]).cfg_options is None
    with pytest.raises(SystemExit):
        parser.parse_args(["--cfg-options", "novalue"])


def test_merge_from_dict_paths():
    cfg = Config.fromfile(CONFIGS / "resnet18_imagenet.py")
    cfg.merge_from_dict(
        parse_cfg_options(
            [
                "optimizer.lr=0.5",
                "data.train.root=/x",
                "new.deep.key=1",
                "custom_hooks.0.priority=10",
                "evaluation.metric_options.topk.1=3",
                "workflow.1=(val,2)",
                "model=dict(x=1)",
            ]
        )
    )
    assert cfg.optimizer.lr == 0.5 and cfg.data.train.root == "/x"
    assert cfg.data.train.type == "ImageFolder"  # siblings kept
    assert cfg.new.deep.key == 1 and isinstance(cfg.new.deep, ConfigDict)
    assert cfg.custom_hooks[0].priority == 10 and cfg.custom_hooks[0].type == "EMAHook"
    assert cfg.evaluation.metric_options.topk == (1, 3)
    assert cfg.workflow == [("train", 1), ("val", 2)]
    assert cfg.model == "dict(x=1)"  # not a literal: kept as a string
    cfg.merge_from_dict({"model": {"num_classes": 5}, "custom_hooks.0": {"type": "X"}})
    assert cfg.model.num_classes == 5 and cfg.custom_hooks[0].to_dict() == {"type": "X"}


def test_merge_from_dict_errors():
    cfg = Config(dict(hooks=[dict(a=1)], lr=0.1))
    with pytest.raises(ConfigError, match="index 3 is out of range .* length 1"):
        cfg.merge_from_dict({"hooks.3.a": 2})
    with pytest.raises(ConfigError, match="must be an integer"):
        cfg.merge_from_dict({"hooks.first.a": 2})
    with pytest.raises(ConfigError, match="inside a float"):
        cfg.merge_from_dict({"lr.value": 2})


# ----------------------------------------------------------------------------- custom imports


def test_custom_imports_success(tmp_path, monkeypatch):
    write(tmp_path, "my_acchooks_plugin.py", "REGISTERED = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_acchooks_plugin", raising=False)
    mods = import_custom_modules(dict(imports="my_acchooks_plugin", allow_failed_imports=False))
    assert [m.__name__ for m in mods] == ["my_acchooks_plugin"] and mods[0].REGISTERED
    assert import_custom_modules(None) == []


def test_custom_imports_cwd_is_importable(tmp_path, monkeypatch):
    write(tmp_path, "my_cwd_plugin.py", "X = 1\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.delitem(sys.modules, "my_cwd_plugin", raising=False)
    assert import_custom_modules(dict(imports=["my_cwd_plugin"]))[0].X == 1


def test_custom_imports_failure(caplog):
    with pytest.raises(
        ConfigError, match=r"'no_such_mod_xyz'.*ModuleNotFoundError.*no_such_mod_xyz"
    ):
        import_custom_modules(dict(imports=["no_such_mod_xyz"]))
    with caplog.at_level(logging.WARNING, logger="acchooks"):
        assert (
            import_custom_modules(dict(imports=["no_such_mod_xyz"], allow_failed_imports=True))
            == []
        )
    assert "no_such_mod_xyz" in caplog.text
    with pytest.raises(ConfigError, match=r"unknown key 'import'; did you mean 'imports'"):
        import_custom_modules({"import": ["x"]})
    with pytest.raises(ConfigError, match="must be a module name or a list"):
        import_custom_modules(dict(imports=3))


def test_misspelled_key_is_reported_without_importing_torch(tmp_path):
    """The fast path of the config check (benchmarks/config_errors.py times it): a key
    error is found before torch, timm, torchvision or Accelerate, which take seconds, are
    imported; the hooks and then the model are checked once the key is fixed."""
    import subprocess
    import sys

    bad = tmp_path / "bad.py"
    bad.write_text(
        "model = dict(type='TimmClassifier', model_name='resnet18', num_classes=4)\n"
        "data = dict(samples_per_gpu=8, workers_per_gpu=0, train=dict(type='Shapes'))\n"
        "optimizer = dict(type='SGD', lr=0.01)\n"
        "runner = dict(type='EpochBasedRunner', max_epochs=1)\n"
        "checkpoint_cfg = dict(interval=1)\n"
    )
    probe = (
        "import sys\nfrom acchooks.cli.train import main\nrc = main(['--config', sys.argv[1]])\n"
        "print(rc, sorted(m for m in ('torch', 'timm', 'torchvision', 'accelerate') if m in sys.modules))"
    )
    res = subprocess.run(
        [sys.executable, "-c", probe, str(bad)], capture_output=True, text=True, timeout=120
    )
    assert "did you mean 'checkpoint_config'" in res.stderr
    assert res.stdout.split("\n")[0] == "2 []", res.stdout + res.stderr[-2000:]
    # fixed key, misspelled hook: torch (the hooks), still no timm
    bad.write_text(
        bad.read_text().replace("checkpoint_cfg", "checkpoint_config")
        + "custom_hooks = [dict(type='EMAHok')]\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", probe, str(bad)], capture_output=True, text=True, timeout=120
    )
    assert "unknown hook type 'EMAHok'" in res.stderr, res.stderr[-2000:]
    assert res.stdout.split("\n")[0] == "2 ['torch']", res.stdout + res.stderr[-2000:]
    bad.write_text(bad.read_text().replace("custom_hooks = [dict(type='EMAHok')]\n", ""))
    # fixed key, wrong model name: the second pass imports timm and names the model
    bad.write_text(bad.read_text().replace("resnet18", "resnet181"))
    res = subprocess.run(
        [sys.executable, "-c", probe, str(bad)], capture_output=True, text=True, timeout=120
    )
    assert res.stdout.startswith("2 ") and "model.model_name" in res.stderr, res.stderr[-2000:]
