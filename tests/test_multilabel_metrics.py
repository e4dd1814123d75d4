"""MMClassification's multi-label metrics (mAP, CP, CR, CF1, OP, OR, OF1) against a plain
reimplementation of mmcls 0.25's formulas; the config check; multi-hot targets through
EvalHook's evaluation path."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from acchooks.config.schema import check_or_raise
from acchooks.errors import ConfigError
from acchooks.evaluation.metrics import evaluate

ALL = ["mAP", "CP", "OP", "CR", "OR", "CF1", "OF1"]
EPS = float(np.finfo(np.float32).eps)


# ------------------------------------------------ mmcls 0.25's formulas, written out plainly
def ref_average_precision(pred: list[float], target: list[int]) -> float:
    """mmcls's ``average_precision``: walk the ranking, precision at each positive over
    the non-difficult samples seen so far; their sum over the positives."""
    order = sorted(range(len(pred)), key=lambda i: -pred[i])
    tp = seen = 0
    total = 0.0
    for i in order:
        if target[i] != -1:
            seen += 1
        if target[i] == 1:
            tp += 1
            total += tp / max(seen, EPS)
    return total / max(tp, EPS)


def ref_map(pred: np.ndarray, target: np.ndarray) -> float:
    aps = [
        ref_average_precision(list(pred[:, c]), list(target[:, c])) for c in range(pred.shape[1])
    ]
    return sum(aps) / len(aps) * 100.0


def ref_performance(pred: np.ndarray, target: np.ndarray, thr=None, k=None) -> dict:
    """mmcls's ``average_performance``: difficult as negative; thr wins over k; thr 0.5."""
    if thr is None and k is None:
        thr = 0.5
    n, c = pred.shape
    tp, fp, fn = np.zeros(c), np.zeros(c), np.zeros(c)
    for i in range(n):
        if thr is not None:
            predicted = {j for j in range(c) if pred[i, j] >= thr}
        else:
            predicted = set(sorted(range(c), key=lambda j: -pred[i, j])[:k])
        for j in range(c):
            positive = target[i, j] == 1
            tp[j] += (j in predicted) and positive
            fp[j] += (j in predicted) and not positive
            fn[j] += (j not in predicted) and positive
    cp = np.mean(tp / np.maximum(tp + fp, EPS)) * 100
    cr = np.mean(tp / np.maximum(tp + fn, EPS)) * 100
    op = tp.sum() / max(tp.sum() + fp.sum(), EPS) * 100
    orec = tp.sum() / max(tp.sum() + fn.sum(), EPS) * 100
    return dict(
        CP=cp,
        CR=cr,
        CF1=2 * cp * cr / max(cp + cr, EPS),
        OP=op,
        OR=orec,
        OF1=2 * op * orec / max(op + orec, EPS),
    )


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, torch.Tensor]:
    """60 samples x 7 classes: scores in (0, 1), targets 1/0 with ~15% difficult (-1);
    class 6 has no positive at all (AP 0, precision/recall 0 as in mmcls)."""
    rng = np.random.default_rng(1234)
    scores = rng.random((60, 7)).astype(np.float32)
    target = (rng.random((60, 7)) < 0.35).astype(np.int64)
    target[rng.random((60, 7)) < 0.15] = -1
    target[:, 6] = np.where(target[:, 6] == 1, 0, target[:, 6])
    return torch.from_numpy(scores), torch.from_numpy(target)


def test_map_equals_mmcls_with_difficult_labels(data):
    scores, targets = data
    assert (targets == -1).any()
    got = evaluate(scores, targets, "mAP")
    assert got == {"mAP": pytest.approx(ref_map(scores.numpy(), targets.numpy()), abs=1e-6)}


@pytest.mark.parametrize(
    "options",
    [{}, {"thr": 0.3}, {"thr": 0.75}, {"k": 1}, {"k": 3}, {"k": 7}],
    ids=["default-thr-0.5", "thr-0.3", "thr-0.75", "k-1", "k-3", "k-all"],
)
def test_performance_metrics_equal_mmcls(data, options):
    scores, targets = data
    got = evaluate(scores, targets, ALL, options)
    want = dict(mAP=ref_map(scores.numpy(), targets.numpy()))
    want.update(ref_performance(scores.numpy(), targets.numpy(), **options))
    assert list(got) == ALL  # in the order asked for
    assert got == {k: pytest.approx(v, abs=1e-6) for k, v in want.items()}


def test_thr_wins_over_k_with_mmcls_warning(data):
    scores, targets = data
    with pytest.warns(UserWarning, match="both thr and k are given; thr is used"):
        got = evaluate(scores, targets, ["CP", "OR"], {"thr": 0.4, "k": 2})
    want = ref_performance(scores.numpy(), targets.numpy(), thr=0.4)
    assert got == {"CP": pytest.approx(want["CP"]), "OR": pytest.approx(want["OR"])}


def test_difficult_labels_by_hand():
    """mAP skips a difficult sample in the ranking; CP/OP count a predicted difficult
    label as a false positive (mmcls sets -1 to 0 there)."""
    scores = torch.tensor([[0.9], [0.8], [0.7]])
    targets = torch.tensor([[-1], [0], [1]])
    # ranking: difficult, negative, positive -> precision at the positive 1/2
    assert evaluate(scores, targets, "mAP") == {"mAP": pytest.approx(50.0)}
    got = evaluate(scores, targets, ["CP", "CR", "OP"], {"thr": 0.75})
    assert got == {"CP": 0.0, "CR": 0.0, "OP": 0.0}  # 0.9 (difficult) and 0.8 predicted
    got = evaluate(scores, targets, ["CP", "CR"], {"k": 1})  # one class: all 3 predicted
    assert got == {"CP": pytest.approx(100 / 3), "CR": 100.0}
    targets = torch.tensor([[1], [-1], [1]])
    assert evaluate(scores, targets, "mAP") == {"mAP": pytest.approx(100.0)}
    assert evaluate(scores, targets, "CP") == {"CP": pytest.approx(200 / 3)}


def test_inputs_are_not_modified(data):
    scores, targets = data
    before = targets.clone()
    evaluate(scores, targets, ALL)
    assert torch.equal(targets, before)


def test_class_index_targets_are_a_clear_error():
    with pytest.raises(ValueError, match="'mAP' is a multi-label metric and needs multi-hot"):
        evaluate(torch.rand(4, 3), torch.tensor([0, 1, 2, 0]), "mAP")
    with pytest.raises(ValueError, match="targets of 1, 0 or -1"):
        evaluate(torch.rand(2, 2), torch.tensor([[2, 0], [0, 1]]), "OF1")


# ------------------------------------------------------------------------- the config check
def _cfg(tmp_path, **evaluation):
    from acchooks.testing import tiny_config

    return tiny_config(tmp_path, evaluation=dict(interval=1, **evaluation))


def test_config_with_the_voc_metrics_is_accepted(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_or_raise(_cfg(tmp_path, metric=ALL), "voc.py")
        check_or_raise(_cfg(tmp_path, metric=ALL, metric_options=dict(thr=0.3)), "voc.py")
        check_or_raise(_cfg(tmp_path, metric="mAP"), "voc.py")


@pytest.mark.parametrize(
    "evaluation, message",
    [
        (
            dict(metric=["mAP", "CF!"]),
            "evaluation.metric: unknown metric 'CF!'; did you mean 'CF1'",
        ),
        (dict(metric="map"), "unknown metric 'map'; did you mean 'mAP'"),
        (dict(metric=ALL, metric_options=dict(k=0)), "evaluation.metric_options.k: expected a"),
        (dict(metric=ALL, metric_options=dict(thr="0.5")), "evaluation.metric_options.thr:"),
        (dict(metric=ALL, metric_options=dict(thrs=0.5)), "unexpected option 'thrs'; did you mean"),
    ],
)
def test_config_mistakes_name_the_key(tmp_path, evaluation, message):
    with pytest.raises(ConfigError) as e:
        check_or_raise(_cfg(tmp_path, **evaluation), "voc.py")
    assert message in str(e.value)


# ------------------------------------------------------- multi-hot targets, end to end
MULTI = dict(type="MultiLabelShapes", img_size=32, num_classes=4, extra_positive=0.3)


def test_multi_hot_targets_pass_through_predict_unchanged():
    from accelerate import Accelerator
    from torch.utils.data import DataLoader

    from acchooks.evaluation.predict import predict
    from acchooks.testing.multilabel import MultiLabelShapes

    args = {k: v for k, v in MULTI.items() if k != "type"}
    dataset = MultiLabelShapes(num_samples=10, seed=3, difficult=0.2, **args)
    assert (dataset.multi_hot == -1).any() and dataset.multi_hot.shape == (10, 4)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 4))
    accelerator = Accelerator(cpu=True)
    loader = accelerator.prepare(DataLoader(dataset, batch_size=4))
    scores, targets = predict(model, loader, accelerator)
    assert torch.equal(targets, dataset.multi_hot)  # every sample once, unchanged
    images = torch.stack([dataset[i][0] for i in range(10)])
    with torch.no_grad():
        assert torch.allclose(scores, model(images).sigmoid(), atol=1e-6)  # as mmcls's heads


def test_multi_label_training_evaluates_the_mmcls_metrics(tmp_path):
    import acchooks.testing.multilabel  # noqa: F401 - registers MultiLabelShapes
    from acchooks.testing import run_config, tiny_config

    cfg = tiny_config(
        tmp_path,
        model=dict(loss=dict(type="BinaryCrossEntropy")),
        data=dict(
            train=dict(MULTI, _delete_=True, num_samples=16, seed=0, is_training=True),
            val=dict(MULTI, _delete_=True, num_samples=12, seed=1, difficult=0.2),
        ),
        runner=dict(max_epochs=1),
        evaluation=dict(interval=1, metric=ALL, metric_options=dict(k=2), save_best="mAP"),
    )
    runner = run_config(cfg)
    (log,) = tmp_path.glob("*.log.json")
    (val,) = [r for r in map(json.loads, log.read_text().splitlines()) if r.get("mode") == "val"]
    hook = next(h for h in runner.hooks.hooks if type(h).__name__ == "EvalHook")
    scores, targets = hook.predict(runner)  # the same weights, evaluated again
    assert targets.shape == (12, 4) and (targets == -1).any()
    want = dict(mAP=ref_map(scores.numpy(), targets.numpy()))
    want.update(ref_performance(scores.numpy(), targets.numpy(), k=2))
    assert {k: val[k] for k in ALL} == {k: pytest.approx(v, abs=1e-4) for k, v in want.items()}
    assert hook.best_ckpt is not None and "best_mAP_epoch_1" in hook.best_ckpt
