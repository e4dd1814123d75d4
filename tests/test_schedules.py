"""LR and momentum schedules through the runner, checked against mmcv 1.x's formulas.

The expected values are computed here, independently, by transcribing mmcv's
``lr_updater.py`` / ``momentum_updater.py`` (``get_lr``, ``before_run`` phases and the
warmup of ``before_train_iter``); the actual values are the ones the runner set, read back
from the JSON log (one train record per iteration).
"""

from __future__ import annotations

import json
from math import cos, pi

import pytest
from toy_mlp import mlp_config

from acchooks.errors import ConfigError
from acchooks.registry import HOOKS
from acchooks.testing import run_config

EPOCHS, ITERS_PER_EPOCH = 3, 4  # 32 samples / 8 per batch
MAX_ITERS = EPOCHS * ITERS_PER_EPOCH
BASE_LR, BASE_MOM = 0.01, 0.9


# ------------------------------------------------------------------ mmcv, transcribed
def anneal_cos(start, end, factor, weight=1):
    return end + 0.5 * weight * (start - end) * (cos(pi * factor) + 1)


def anneal_linear(start, end, factor):
    return start + (end - start) * factor


ANNEAL = {"cos": anneal_cos, "linear": anneal_linear}


def mmcv_value(policy, kw, base, it, ep, by_epoch, momentum=False):
    """mmcv's get_lr / get_momentum for a runner at iteration ``it`` of epoch ``ep``."""
    progress = ep if by_epoch else it
    max_progress = EPOCHS if by_epoch else MAX_ITERS
    target = None
    for m in ("min_lr", "min_momentum"):
        if kw.get(m) is not None:
            target = kw[m]
        if kw.get(m + "_ratio") is not None:
            target = base * kw[m + "_ratio"]
    if policy == "Fixed":
        return base
    if policy == "Step":
        step = kw["step"]
        if isinstance(step, int):
            exp = progress // step
        else:
            exp = len(step)
            for i, s in enumerate(step):
                if progress < s:
                    exp = i
                    break
        v = base * kw.get("gamma", 0.5 if momentum else 0.1) ** exp
        floor = kw.get("min_momentum" if momentum else "min_lr")
        return max(v, floor) if floor is not None else v
    if policy == "Exp":
        return base * kw["gamma"] ** progress
    if policy == "Poly":
        coeff = (1 - progress / max_progress) ** kw.get("power", 1.0)
        return (base - kw.get("min_lr", 0.0)) * coeff + kw.get("min_lr", 0.0)
    if policy == "Inv":
        return base * (1 + kw["gamma"] * progress) ** (-kw.get("power", 1.0))
    if policy == "CosineAnnealing":
        return anneal_cos(base, target, progress / max_progress)
    if policy == "LinearAnnealing":
        return anneal_linear(base, target, progress / max_progress)
    if policy == "FlatCosineAnnealing":
        start = round(max_progress * kw.get("start_percent", 0.75))
        progress, max_progress = progress - start, max_progress - start
        return base if progress < 0 else anneal_cos(base, target, progress / max_progress)
    if policy == "CosineRestart":
        periods, weights = kw["periods"], kw.get("restart_weights", [1])
        cumulative = [sum(periods[0 : i + 1]) for i in range(0, len(periods))]
        idx = next(i for i, p in enumerate(cumulative) if progress < p)
        nearest_restart = 0 if idx == 0 else cumulative[idx - 1]
        alpha = min((progress - nearest_restart) / periods[idx], 1)
        return anneal_cos(base, target, alpha, weights[idx])
    if policy == "Cyclic":
        tr = kw.get("target_ratio", (0.85 / 0.95, 1) if momentum else (10, 1e-4))
        if isinstance(tr, float):
            tr = (tr, tr / 1e5)
        elif len(tr) == 1:
            tr = (tr[0], tr[0] / 1e5)
        max_iter_per_phase = MAX_ITERS // kw.get("cyclic_times", 1)
        iter_up_phase = int(kw.get("step_ratio_up", 0.4) * max_iter_per_phase)
        phases = [[0, iter_up_phase, 1, tr[0]], [iter_up_phase, max_iter_per_phase, tr[0], tr[1]]]
        curr_iter, curr_cycle = it % max_iter_per_phase, it // max_iter_per_phase
        scale = kw.get("gamma", 1) ** curr_cycle
        for start_iter, end_iter, start_ratio, end_ratio in phases:
            if start_iter <= curr_iter < end_iter:
                if start_iter == 0:
                    end_ratio = 1 - scale + end_ratio * scale
                else:
                    start_ratio = 1 - scale + start_ratio * scale
                return ANNEAL[kw.get("anneal_strategy", "cos")](
                    base * start_ratio,
                    base * end_ratio,
                    (curr_iter - start_iter) / (end_iter - start_iter),
                )
    if policy == "OneCycle" and not momentum:
        total_steps = kw.get("total_steps", MAX_ITERS)
        pct, div = kw.get("pct_start", 0.3), kw.get("div_factor", 25)
        base = kw["max_lr"] / div
        if kw.get("three_phase", False):
            phases = [
                [float(pct * total_steps) - 1, 1, div],
                [float(2 * pct * total_steps) - 2, div, 1],
                [total_steps - 1, 1, 1 / kw.get("final_div_factor", 1e4)],
            ]
        else:
            phases = [
                [float(pct * total_steps) - 1, 1, div],
                [total_steps - 1, div, 1 / kw.get("final_div_factor", 1e4)],
            ]
        start_iter = 0
        for end_iter, start_lr, end_lr in phases:
            if it <= end_iter:
                return ANNEAL[kw.get("anneal_strategy", "cos")](
                    base * start_lr, base * end_lr, (it - start_iter) / (end_iter - start_iter)
                )
            start_iter = end_iter
    if policy == "OneCycle" and momentum:
        pct = kw.get("pct_start", 0.3)
        group = {
            "base_momentum": kw.get("base_momentum", 0.85),
            "max_momentum": kw.get("max_momentum", 0.95),
        }
        if kw.get("three_phase", False):
            phases = [
                (float(pct * MAX_ITERS) - 1, "max_momentum", "base_momentum"),
                (float(2 * pct * MAX_ITERS) - 2, "base_momentum", "max_momentum"),
                (MAX_ITERS - 1, "max_momentum", "max_momentum"),
            ]
        else:
            phases = [
                (float(pct * MAX_ITERS) - 1, "max_momentum", "base_momentum"),
                (MAX_ITERS - 1, "base_momentum", "max_momentum"),
            ]
        start_iter = 0
        for i, (end_iter, s, e) in enumerate(phases):
            if it <= end_iter or i == len(phases) - 1:
                return ANNEAL[kw.get("anneal_strategy", "cos")](
                    group[s], group[e], (it - start_iter) / (end_iter - start_iter)
                )
            start_iter = end_iter
    raise AssertionError(policy)


def mmcv_warmup(warmup, regular, cur_iters, warmup_iters, ratio, momentum=False):
    """get_warmup_lr (multiplies) / get_warmup_momentum (divides)."""
    if warmup == "constant":
        k = ratio
    elif warmup == "linear":
        k = 1 - (1 - cur_iters / warmup_iters) * (1 - ratio)
    else:
        k = ratio ** (1 - cur_iters / warmup_iters)
    return regular / k if momentum else regular * k


def expected(cfg, base, it, ep, momentum=False):
    cfg = dict(cfg)
    policy = cfg.pop("policy")
    by_epoch = cfg.pop("by_epoch", policy not in ("Cyclic", "OneCycle"))
    warmup = cfg.pop("warmup", None)
    warmup_iters = cfg.pop("warmup_iters", 0)
    if cfg.pop("warmup_by_epoch", False):
        warmup_iters *= ITERS_PER_EPOCH
    ratio = cfg.pop("warmup_ratio", 0.9 if momentum else 0.1)
    regular = mmcv_value(policy, cfg, base, it, ep, by_epoch, momentum)
    if warmup is None or it >= warmup_iters:
        return regular
    return mmcv_warmup(warmup, regular, it, warmup_iters, ratio, momentum)


# ------------------------------------------------------------------ running
def train_records(work_dir):
    (log,) = work_dir.glob("*.log.json")
    recs = [json.loads(line) for line in log.read_text().splitlines()]
    return [r for r in recs if r.get("mode") == "train"]


def run(tmp_path, **overrides):
    cfg = mlp_config(tmp_path, runner=dict(max_epochs=EPOCHS), **overrides)
    runner = run_config(cfg)
    recs = train_records(tmp_path)
    assert len(recs) == MAX_ITERS and runner.step == MAX_ITERS
    return recs


LR_CASES = {
    "fixed": dict(policy="fixed"),
    "step-int": dict(policy="step", step=2, gamma=0.5),
    "step-list-min": dict(policy="step", step=[1, 2, 7], min_lr=2e-4),
    "exp": dict(policy="exp", gamma=0.9),
    "poly": dict(policy="poly", power=2.0, min_lr=1e-4),
    "inv": dict(policy="inv", gamma=0.1, power=0.75),
    "cosine-ratio": dict(policy="CosineAnnealing", min_lr_ratio=0.01),
    "cosine-min": dict(policy="CosineAnnealing", min_lr=1e-5),
    "linear-annealing": dict(policy="LinearAnnealing", min_lr_ratio=0.1),
    "flat-cosine": dict(policy="FlatCosineAnnealing", start_percent=0.5, min_lr=0.0),
    "cosine-restart": dict(
        policy="CosineRestart", periods=[1, 2, 9], restart_weights=[1, 0.5, 0.3], min_lr_ratio=0.1
    ),
}
ITER_ONLY_CASES = {
    "cyclic": dict(policy="Cyclic", target_ratio=(10, 1e-3), cyclic_times=2, step_ratio_up=0.4),
    "cyclic-linear-gamma": dict(
        policy="cyclic",
        target_ratio=5.0,
        cyclic_times=3,
        step_ratio_up=0.5,
        anneal_strategy="linear",
        gamma=0.5,
    ),
    "onecycle": dict(policy="OneCycle", max_lr=0.05),
    "onecycle-3phase": dict(
        policy="OneCycle",
        max_lr=0.05,
        total_steps=15,
        pct_start=0.25,
        anneal_strategy="linear",
        div_factor=10,
        final_div_factor=100,
        three_phase=True,
    ),
}
WARMUPS = [
    None,
    dict(warmup="linear", warmup_iters=5, warmup_ratio=0.2),
    dict(warmup="exp", warmup_iters=1, warmup_by_epoch=True),
    dict(warmup="constant", warmup_iters=3),
]


def _with_and_without_warmup(i, warmups):
    """No warmup, and one warmup kind (rotating over the cases, to keep the suite short)."""
    return [(0, None), (1 + i % (len(warmups) - 1), warmups[1 + i % (len(warmups) - 1)])]


def _cases():
    i = 0
    for name, case in LR_CASES.items():
        for by_epoch in (True, False):
            i += 1
            for w, warm in _with_and_without_warmup(i, WARMUPS):
                yield pytest.param(
                    {**case, "by_epoch": by_epoch, **(warm or {})},
                    id=f"{name}-{'epoch' if by_epoch else 'iter'}-w{w}",
                )
    for name, case in ITER_ONLY_CASES.items():
        i += 1
        for w, warm in _with_and_without_warmup(i, WARMUPS):
            yield pytest.param({**case, **(warm or {})}, id=f"{name}-w{w}")


def _canonical(cfg):
    from acchooks.schedules import policy_key

    return {**cfg, "policy": policy_key(cfg["policy"])}


@pytest.mark.parametrize("lr_config", list(_cases()))
def test_lr_policy_matches_mmcv(tmp_path, lr_config):
    recs = run(tmp_path, lr_config=dict(_delete_=True, **lr_config))
    for r in recs:
        it, ep = r["step"] - 1, r["epoch"] - 1
        assert r["lr"] == pytest.approx(
            expected(_canonical(lr_config), BASE_LR, it, ep), rel=1e-12, abs=0
        ), (it, ep)


MOMENTUM_CASES = {
    "step": dict(policy="step", step=[1, 2], gamma=0.8, min_momentum=0.6),
    "cosine": dict(policy="CosineAnnealing", min_momentum_ratio=0.5),
    "cosine-min": dict(policy="CosineAnnealing", min_momentum=0.8),
}
MOMENTUM_ITER_ONLY = {
    "cyclic": dict(policy="Cyclic", cyclic_times=2, gamma=0.5),
    "onecycle": dict(policy="OneCycle"),
    "onecycle-3phase": dict(
        policy="OneCycle",
        base_momentum=0.8,
        max_momentum=0.9,
        pct_start=0.25,
        three_phase=True,
        anneal_strategy="linear",
    ),
}
# warmup divides the momentum: with the default ratio 0.9 it starts at 0.9 / 0.9 = 1.0,
# which SGD takes but Adam's bias correction (1 - beta1**t) cannot
MOMENTUM_WARMUPS = [
    None,
    dict(warmup="linear", warmup_iters=5, warmup_ratio=0.95),
    dict(warmup="exp", warmup_iters=1, warmup_ratio=0.95, warmup_by_epoch=True),
]
SGD_ONLY_WARMUP = dict(warmup="constant", warmup_iters=3)


def _momentum_cases():
    i = 0
    for optimizer in ("SGD", "Adam"):
        warmups = MOMENTUM_WARMUPS + ([SGD_ONLY_WARMUP] if optimizer == "SGD" else [])
        for name, case in MOMENTUM_CASES.items():
            for by_epoch in (True, False):
                i += 1
                for w, warm in _with_and_without_warmup(i, warmups):
                    yield pytest.param(
                        optimizer,
                        {**case, "by_epoch": by_epoch, **(warm or {})},
                        id=f"{optimizer}-{name}-{'epoch' if by_epoch else 'iter'}-w{w}",
                    )
        for name, case in MOMENTUM_ITER_ONLY.items():
            i += 1
            for w, warm in _with_and_without_warmup(i, warmups):
                if optimizer == "Adam" and name.startswith("onecycle") and warm:
                    continue  # max_momentum / warmup factor reaches 1.0 (see above)
                yield pytest.param(
                    optimizer, {**case, **(warm or {})}, id=f"{optimizer}-{name}-w{w}"
                )


@pytest.mark.parametrize("optimizer,momentum_config", list(_momentum_cases()))
def test_momentum_policy_matches_mmcv(tmp_path, optimizer, momentum_config):
    opt = (
        dict(_delete_=True, type="SGD", lr=BASE_LR, momentum=BASE_MOM)
        if optimizer == "SGD"
        else dict(_delete_=True, type="Adam", lr=BASE_LR, betas=(BASE_MOM, 0.999))
    )
    recs = run(
        tmp_path,
        optimizer=opt,
        momentum_config=momentum_config,
        lr_config=dict(_delete_=True, policy="CosineAnnealing", min_lr=0.0, by_epoch=False),
    )
    for r in recs:
        it, ep = r["step"] - 1, r["epoch"] - 1
        assert r["momentum"] == pytest.approx(
            expected(_canonical(momentum_config), BASE_MOM, it, ep, momentum=True), rel=1e-12, abs=0
        ), (it, ep)
        assert r["lr"] == pytest.approx(anneal_cos(BASE_LR, 0.0, it / MAX_ITERS), rel=1e-12)


def test_hook_names_select_the_same_policy(tmp_path):
    a = run(tmp_path / "a", lr_config=dict(_delete_=True, policy="step", step=[1], gamma=0.5))
    b = run(
        tmp_path / "b", lr_config=dict(_delete_=True, type="StepLrUpdaterHook", step=[1], gamma=0.5)
    )
    assert [r["lr"] for r in a] == [r["lr"] for r in b]
    assert issubclass(HOOKS.get("CosineAnnealingLrUpdaterHook"), HOOKS.get("LrUpdaterHook"))
    assert issubclass(HOOKS.get("OneCycleMomentumUpdaterHook"), HOOKS.get("MomentumUpdaterHook"))
    hook = HOOKS.build(dict(type="CosineAnnealingLrUpdaterHook", min_lr=0.0))
    assert hook.policy == "CosineAnnealing" and hook.by_epoch


@pytest.mark.parametrize(
    "lr_config,match",
    [
        (dict(policy="OneCycle", max_lr=0.1, by_epoch=True), "only supports by_epoch=False"),
        (dict(policy="Cyclic", by_epoch=True), "only supports by_epoch=False"),
        (
            dict(policy="FlatCosineAnnealing", start_percent=1.5, min_lr=0),
            r"start_percent.*\[0, 1\]",
        ),
        (dict(policy="OneCycle", max_lr=0.1, pct_start=-0.1), "pct_start"),
        (dict(policy="OneCycle", max_lr=0.1, anneal_strategy="cosine"), "anneal_strategy"),
        (dict(policy="Cyclic", step_ratio_up=1.0), "step_ratio_up"),
        (dict(policy="Cyclic", gamma=0.0), "gamma"),
        (dict(policy="CosineAnnealing"), "exactly one of min_lr / min_lr_ratio"),
        (dict(policy="CosineAnnealing", min_lr=0, min_lr_ratio=0.1), "exactly one of"),
        (
            dict(policy="CosineRestart", periods=[2, 3], restart_weights=[1], min_lr=0),
            "same length",
        ),
        (dict(policy="step", step=[0, 2]), "positive int"),
        (dict(policy="step", step=[1], warmup="cosine", warmup_iters=2), "warmup"),
        (dict(policy="step", step=[1], warmup="linear"), "warmup_iters"),
        (
            dict(policy="step", step=[1], warmup="linear", warmup_iters=2, warmup_ratio=0),
            "warmup_ratio",
        ),
        (dict(policy="exp"), "needs argument 'gamma'"),
        (dict(policy="step", step=1, gama=0.1), "did you mean 'gamma'"),
        (dict(policy="Cosine", min_lr=0), "unknown policy 'Cosine'"),
        (dict(type="CosineLrUpdaterHook"), "did you mean 'CosineRestartLrUpdaterHook'|unknown"),
        (dict(type="StepLrUpdaterHook", policy="exp", step=1), "disagree"),
        (dict(step=1), "policy: missing"),
    ],
)
def test_invalid_lr_config_is_a_config_error(tmp_path, lr_config, match):
    with pytest.raises(ConfigError, match=match):
        run_config(mlp_config(tmp_path, lr_config=dict(_delete_=True, **lr_config)))
    assert not list(tmp_path.glob("*.log.json"))  # reported before anything ran


@pytest.mark.parametrize(
    "lr_config,match",
    [
        (dict(policy="OneCycle", max_lr=0.1, total_steps=5), "total_steps: must be >= the 12"),
        (dict(policy="OneCycle", max_lr=[0.1, 0.2]), "expected 1 values"),
        (
            dict(
                policy="CosineRestart",
                periods=[2, 3],
                restart_weights=[1, 1],
                min_lr=0,
                by_epoch=False,
            ),
            "sum to 5",
        ),
        (dict(policy="Cyclic", cyclic_times=13), "cyclic_times"),
    ],
)
def test_run_dependent_errors_at_start(tmp_path, lr_config, match):
    with pytest.raises(ConfigError, match=match):
        run_config(
            mlp_config(
                tmp_path, runner=dict(max_epochs=EPOCHS), lr_config=dict(_delete_=True, **lr_config)
            )
        )


def test_momentum_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="unexpected argument 'min_lr'"):
        run_config(mlp_config(tmp_path, momentum_config=dict(policy="CosineAnnealing", min_lr=0)))
    with pytest.raises(ConfigError, match="unknown policy 'poly'"):
        run_config(mlp_config(tmp_path, momentum_config=dict(policy="poly")))


def test_iter_based_runner_by_epoch_needs_epochs(tmp_path):
    with pytest.raises(ConfigError, match="needs an EpochBasedRunner"):
        run_config(
            mlp_config(
                tmp_path,
                runner=dict(_delete_=True, type="IterBasedRunner", max_iters=6),
                lr_config=dict(_delete_=True, policy="CosineAnnealing", min_lr=0),
            )
        )
