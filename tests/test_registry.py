import pytest

from acchooks import DATASETS, HOOKS, MODELS, Hook
from acchooks.hooks import Priority, get_priority
from acchooks.registry import Registry


def test_register_build_and_names():
    reg = Registry("thing")

    @reg.register_module()
    class Foo:
        def __init__(self, a, b=2):
            self.a, self.b = a, b

    @reg.register_module(name="Bar2")
    class Bar:
        pass

    foo = reg.build(dict(type="Foo", a=1))
    assert (foo.a, foo.b) == (1, 2)
    assert isinstance(reg.build(dict(type="Bar2")), Bar)
    assert "Bar" not in reg
    assert reg.build(dict(type="Foo"), a=5).a == 5  # default args fill gaps


def test_duplicate_needs_force():
    reg = Registry("thing")

    @reg.register_module()
    class Foo:
        pass

    with pytest.raises(KeyError, match="already registered.*force=True"):

        @reg.register_module(name="Foo")
        class Other:
            pass

    @reg.register_module(name="Foo", force=True)
    class Replacement:
        pass

    assert reg.get("Foo") is Replacement


def test_unknown_type_lists_closest():
    with pytest.raises(KeyError) as e:
        HOOKS.build(dict(type="TextLogerHook"))
    msg = str(e.value)
    assert "unknown hook type 'TextLogerHook'" in msg
    assert "did you mean 'TextLoggerHook'" in msg
    assert "registered:" in msg


def test_public_registries_filled():
    for name in (
        "OptimizerHook",
        "LrUpdaterHook",
        "CheckpointHook",
        "IterTimerHook",
        "EvalHook",
        "TextLoggerHook",
        "TensorboardLoggerHook",
    ):
        assert issubclass(HOOKS.get(name), Hook)
    assert "TimmClassifier" in MODELS
    assert {"Shapes", "ImageFolder"} <= set(DATASETS.keys())


@pytest.mark.parametrize(
    "value,expected",
    [
        ("HIGHEST", 0),
        ("VERY_HIGH", 10),
        ("HIGH", 30),
        ("ABOVE_NORMAL", 40),
        ("NORMAL", 50),
        ("BELOW_NORMAL", 60),
        ("LOW", 70),
        ("VERY_LOW", 90),
        ("LOWEST", 100),
        ("normal", 50),
        (0, 0),
        (55, 55),
        (100, 100),
        (Priority.HIGH, 30),
    ],
)
def test_priority_accepts(value, expected):
    assert get_priority(value) == expected


@pytest.mark.parametrize(
    "value,match",
    [
        ("NORMALL", "did you mean 'NORMAL'"),
        (101, "between 0 and 100"),
        (-1, "between 0 and 100"),
        (1.5, "must be a name"),
        (True, "must be a name"),
        (None, "must be a name"),
    ],
)
def test_priority_rejects(value, match):
    with pytest.raises((ValueError, TypeError), match=match):
        get_priority(value)
