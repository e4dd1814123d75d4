"""The shared value checks, option-set declarations, and that each declaration agrees
with the code that consumes it."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

from acchooks.config.checks import (
    int_at_least,
    literal,
    non_negative_int,
    one_of,
    optional,
    positive_int,
    problems_of,
    require,
    sequence_of,
)
from acchooks.config.optionset import Option, OptionSet, section
from acchooks.errors import ConfigError


def test_one_message_style():
    assert positive_int.problem(0, "a.b") == "a.b: expected a positive int, got 0"
    assert positive_int.problem(True, "a.b") == "a.b: expected a positive int, got True"
    assert positive_int.problem(3, "a.b") is None
    assert positive_int(3, "a.b") == 3
    with pytest.raises(ConfigError, match=r"^x: expected an int >= 0, got -1$"):
        non_negative_int(-1, "x")
    assert one_of(("auto", "bar", "lines")).problem("line", "m") == (
        "m: expected one of 'auto', 'bar', 'lines', got 'line'; did you mean 'lines'?"
    )
    either = literal("auto") | int_at_least(1)
    assert either.problem("auto", "s") is None and either.problem(4, "s") is None
    assert either.problem(0, "s") == "s: expected 'auto' or an int >= 1, got 0"
    assert optional(positive_int).problem(None, "p") is None
    assert non_negative_int.noted("0: off").problem(-2, "w") == (
        "w: expected an int >= 0 (0: off), got -2"
    )
    ints = sequence_of(positive_int, "a list of positive ints", min_length=1)
    assert ints.ok([1, 2]) and not ints.ok([]) and not ints.ok([1, 0]) and not ints.ok(3)


def test_problems_are_collected():
    found = problems_of((positive_int, 0, "a"), (positive_int, 1, "b"), (one_of("xy"), "z", "c"))
    assert [p.split(":")[0] for p in found] == ["a", "c"]
    with pytest.raises(ConfigError) as e:
        require((positive_int, 0, "a"), (non_negative_int, -1, "b"))
    assert len(e.value.problems) == 2


def test_option_set_walks_keys_sections_and_defaults():
    inner = OptionSet("outer.inner", [Option("n", positive_int, 2)])
    outer = OptionSet("outer", [Option("need", required="required for x"), section("inner", inner)])
    assert outer.problems({"inner": {"n": 0, "nn": 1}}, "outer") == [
        "outer.need: missing (required for x)",
        "outer.inner: unexpected key 'nn'; did you mean 'n'? (accepted: n)",
        "outer.inner.n: expected a positive int, got 0",
    ]
    assert outer.problems({"need": 1, "inner": []}) == ["outer.inner: expected a dict, got []"]
    assert inner.resolve(None) == {"n": 2}
    assert inner.resolve({"n": 5}, n=3) == {"n": 5} and inner.resolve({}, n=3) == {"n": 3}


def test_progress_declaration_matches_the_hook():
    from acchooks.hooks.options import PROGRESS_CONFIG, PROGRESS_OWN
    from acchooks.hooks.progress import ProgressBarHook

    params = list(inspect.signature(ProgressBarHook.__init__).parameters.values())[1:]
    declared = [o for o in PROGRESS_CONFIG if o.name not in PROGRESS_OWN]
    assert [(p.name, p.default) for p in params] == [(o.name, o.default) for o in declared]


def test_shapes_declaration_matches_the_dataset():
    from acchooks.datasets.shapes import OPTIONS, Shapes

    params = dict(inspect.signature(Shapes.__init__).parameters)
    params.pop("self")
    assert {k: p.default for k, p in params.items()} == OPTIONS.defaults()


def test_builders_read_the_declared_defaults():
    from acchooks.runner.options import ACCELERATOR, DATA, loader_options

    opts = loader_options({"train": {}}, "train", train=True)
    assert opts["samples_per_gpu"] == DATA["samples_per_gpu"].default == 32
    assert opts["workers_per_gpu"] == DATA["workers_per_gpu"].default
    assert opts["shuffle"] and opts["persistent_workers"] and not opts["drop_last"]
    data = {"samples_per_gpu": 4, "workers_per_gpu": 0, "val_dataloader": {"samples_per_gpu": 2}}
    val = loader_options(data, "val", train=False)
    assert (val["samples_per_gpu"], val["shuffle"], val["persistent_workers"]) == (2, False, False)
    assert ACCELERATOR.resolve({"cpu": True})["even_batches"] is True


def test_first_pass_declarations_load_without_torch():
    probe = (
        "import sys\n"
        "from acchooks.config.optionset import declarations\n"
        "acc = declarations('acchooks.runner.options').ACCELERATOR\n"
        "ht = declarations('acchooks.hooks.options').HOOK_TIMING\n"
        "print(acc['mixed_precision'].default, ht['sample_every'].default, 'torch' in sys.modules)"
    )
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert res.stdout.split() == ["no", "auto", "False"], res.stderr[-2000:]
