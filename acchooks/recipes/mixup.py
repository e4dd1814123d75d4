"""Batch mixing (mixup / CutMix): its options, MMClassification's form, and its checks.

Two ways to ask for it, translated onto one set of options (timm's ``Mixup`` argument
names, declared once in :data:`MIXUP`) that the :class:`~acchooks.hooks.mixup.MixupHook`
takes:

* acchooks' own, a top-level key: ``mixup = dict(mixup_alpha=0.8, cutmix_alpha=1.0,
  label_smoothing=0.1)``;
* MMClassification 0.x's ``model.train_cfg = dict(augments=[dict(type='BatchMixup',
  alpha=0.8, num_classes=1000, prob=0.5), dict(type='BatchCutMix', alpha=1.0,
  num_classes=1000, prob=0.5)])``: augment ``k`` is chosen with its ``prob`` (none of
  them with the rest), which is timm's ``prob`` = the sum and ``switch_prob`` = CutMix's
  share. MMClassification mixes one-hot labels, so ``label_smoothing`` is 0 there (a
  smoothing loss smooths them). ``BatchResizeMix`` is refused with a message.

Mixing makes soft targets: without a ``model.loss`` the loss is timm's
``SoftTargetCrossEntropy``; a loss that cannot take soft targets is a config error.
Plain Python: the registries are imported only inside the checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..config.checks import (
    Check,
    boolean,
    is_number,
    literal,
    non_negative_int,
    number_at_least,
    number_in,
    one_of,
    optional,
    positive_int,
)
from ..config.optionset import Option, OptionSet
from ..errors import did_you_mean

MODES = ("batch", "pair", "elem")
_MINMAX = Check(
    "[min, max] with 0 < min < max <= 1 (box sides as fractions of the image)",
    lambda v: (
        isinstance(v, (list, tuple))
        and len(v) == 2
        and all(map(is_number, v))
        and 0 < v[0] < v[1] <= 1
    ),
)

MIXUP = OptionSet(  # timm.data.Mixup's arguments and defaults, plus timm train.py's off epoch
    "mixup",
    [
        Option("type", literal("MixupHook"), "MixupHook", "the hook that mixes"),
        Option("mixup_alpha", number_at_least(0), 1.0, "mixup's Beta(alpha, alpha); 0: no mixup"),
        Option("cutmix_alpha", number_at_least(0), 0.0, "CutMix's Beta(alpha, alpha); 0: none"),
        Option("cutmix_minmax", optional(_MINMAX), None, "CutMix box from [min, max] instead"),
        Option("prob", number_in(0, 1), 1.0, "probability of mixing a batch (pair, element)"),
        Option("switch_prob", number_in(0, 1), 0.5, "both on: probability of CutMix, not mixup"),
        Option("mode", one_of(MODES), "batch", "one draw per batch, per pair or per element"),
        Option("correct_lam", boolean, True, "CutMix: lambda from the box area after clipping"),
        Option("label_smoothing", number_in(0, 1, high_open=True), 0.1, "folded into targets"),
        Option("num_classes", optional(positive_int), None, "None: model.num_classes"),
        Option("mixup_off_epoch", non_negative_int, 0, "no mixing from this epoch on; 0: never"),
    ],
    "``mixup=dict(mixup_alpha=0.8, cutmix_alpha=1.0, ...)``: the MixupHook (timm's names).",
)

# MMClassification 0.x augment -> (the alpha it sets, its accepted arguments)
MMCLS_AUGMENTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "BatchMixup": ("mixup_alpha", ("type", "alpha", "num_classes", "prob")),
    "BatchCutMix": (
        "cutmix_alpha",
        ("type", "alpha", "num_classes", "prob", "cutmix_minmax", "correct_lam"),
    ),
}
REFUSED = {
    "BatchResizeMix": "not supported by acchooks (it pastes a resized image, which timm's "
    "Mixup does not do); use BatchMixup and/or BatchCutMix, or remove it",
}
SOFT_DEFAULT_LOSS = {"type": "SoftTargetCrossEntropy"}


def _augment_list(train_cfg: Any, path: str) -> tuple[list[Any], list[str]]:
    if not isinstance(train_cfg, Mapping):
        return [], [f"{path}: expected a dict such as dict(augments=[...]), got {train_cfg!r}"]
    problems = [
        f"{path}: unexpected key '{k}'{did_you_mean(k, ['augments'])} (accepted: augments)"
        for k in train_cfg
        if k != "augments"
    ]
    augments = train_cfg.get("augments", [])
    if isinstance(augments, Mapping):  # one augment, as MMClassification also accepts
        augments = [augments]
    if not isinstance(augments, (list, tuple)):
        problems.append(f"{path}.augments: expected a list of dict(type=...), got {augments!r}")
        return [], problems
    return list(augments), problems


def _translate_one(aug: Any, where: str, out: dict[str, Any], probs: dict[str, float]) -> list[str]:
    kind = aug.get("type") if isinstance(aug, Mapping) else None
    if kind in REFUSED:
        return [f"{where} ({kind}): {REFUSED[kind]}"]
    if kind not in MMCLS_AUGMENTS:
        names = [*MMCLS_AUGMENTS, *REFUSED]
        return [
            f"{where}: expected dict(type=...) with type one of {', '.join(names)}, got "
            f"{aug!r}{did_you_mean(str(kind), names)}"
        ]
    alpha_key, accepted = MMCLS_AUGMENTS[kind]
    problems = [
        f"{where} ({kind}): unexpected argument '{k}'{did_you_mean(k, accepted)} "
        f"(accepted: {', '.join(accepted[1:])})"
        for k in aug
        if k not in accepted
    ]
    if kind in probs:
        problems.append(f"{where} ({kind}): given twice; give each augment once")
    alpha = aug.get("alpha")
    if not is_number(alpha) or alpha <= 0:
        problems.append(f"{where} ({kind}).alpha: expected a number > 0, got {alpha!r}")
    prob = aug.get("prob", 1.0)
    if not is_number(prob) or not 0 <= prob <= 1:
        problems.append(f"{where} ({kind}).prob: expected a float in [0, 1], got {prob!r}")
    if problems:
        return problems
    probs[kind] = float(prob)
    out[alpha_key] = float(alpha)
    for key in ("cutmix_minmax", "correct_lam"):
        if key in aug:
            out[key] = aug[key]
    if "num_classes" in aug:
        if out.setdefault("num_classes", aug["num_classes"]) != aug["num_classes"]:
            problems.append(f"{where} ({kind}).num_classes: differs from the other augment's")
    return problems


def from_train_cfg(train_cfg: Any, path: str = "model.train_cfg") -> tuple[dict | None, list[str]]:
    """MMClassification's ``train_cfg=dict(augments=[...])`` as :data:`MIXUP` options
    (None when it has no augment), and the problems found translating it."""
    augments, problems = _augment_list(train_cfg, path)
    out: dict[str, Any] = {"mixup_alpha": 0.0, "cutmix_alpha": 0.0, "label_smoothing": 0.0}
    probs: dict[str, float] = {}
    for i, aug in enumerate(augments):
        problems += _translate_one(aug, f"{path}.augments[{i}]", out, probs)
    if problems or not probs:
        return None, problems
    total = sum(probs.values())
    if total > 1 + 1e-9:
        return None, [f"{path}.augments: the probs add up to {total:g}; they must not exceed 1"]
    out["prob"] = total
    if total > 0 and "BatchMixup" in probs and "BatchCutMix" in probs:
        out["switch_prob"] = probs["BatchCutMix"] / total
    return out, []


def _model_num_classes(cfg: Mapping[str, Any]) -> int | None:
    model = cfg.get("model") or {}
    if "num_classes" in model:
        return model["num_classes"]
    return 1000 if model.get("type") == "TimmClassifier" else None  # timm's default


def _requested(cfg: Mapping[str, Any]) -> tuple[dict | None, list[str]]:
    """The mixing options as given (either form), and the problems of the form."""
    model = cfg.get("model") if isinstance(cfg.get("model"), Mapping) else {}
    train_cfg, own = model.get("train_cfg"), cfg.get("mixup")
    if train_cfg is not None and own is not None:
        return None, [
            "mixup: given together with model.train_cfg.augments; keep one of them (both "
            "configure the same MixupHook)"
        ]
    if own is not None:
        return dict(own), MIXUP.problems(own)
    if train_cfg is not None:
        return from_train_cfg(train_cfg)
    return None, []


def mixup_options(cfg: Mapping[str, Any]) -> dict[str, Any] | None:
    """The MixupHook's config (``type`` and every :data:`MIXUP` option, ``num_classes``
    from the model when not given) or None when the config asks for no mixing."""
    given, _ = _requested(cfg)
    if given is None:
        return None
    opts = MIXUP.resolve(given)
    if opts["num_classes"] is None:
        opts["num_classes"] = _model_num_classes(cfg)
    return opts


def default_loss(cfg: Mapping[str, Any]) -> dict[str, Any] | None:
    """The loss used when ``model.loss`` is not given: SoftTargetCrossEntropy with mixing
    (as timm's train.py), else None (the model builder's default)."""
    return dict(SOFT_DEFAULT_LOSS) if mixup_options(cfg) is not None else None


def _loss_problems(loss: Any, smoothing: float) -> list[str]:
    from ..models.losses import target_kind
    from ..registry import LOSSES

    if not isinstance(loss, Mapping) or loss.get("type") not in LOSSES:
        return []  # the model.loss check reports it
    cls = LOSSES.get(loss["type"])
    kind = target_kind(cls)
    if kind == "hard":
        return [
            f"model.loss ({loss['type']}): takes class indices only, but mixup/CutMix give "
            f"soft targets; use SoftTargetCrossEntropy (or CrossEntropyLoss, "
            f"BinaryCrossEntropy) and put label smoothing in mixup.label_smoothing"
        ]
    if kind is None:
        return [
            f"model.loss ({loss['type']}): does not say whether it takes soft targets, which "
            f"mixup/CutMix give; if it takes (N, num_classes) probabilities, set "
            f"`target_kind = 'both'` (or 'soft') on the class, else use SoftTargetCrossEntropy"
        ]
    if smoothing > 0 and (loss.get("label_smoothing") or 0) > 0:
        return [
            "model.loss.label_smoothing and the mixup label smoothing are both set: the "
            "targets would be smoothed twice; keep one (timm folds it into the mixup targets)"
        ]
    return []


def check_mixup(cfg: Mapping[str, Any]) -> list[str]:
    """Every problem of the batch-mixing settings: their values (either form), the model's
    ``num_classes``, the loss, and a MixupHook put in ``custom_hooks``."""
    given, problems = _requested(cfg)
    for i, h in enumerate(cfg.get("custom_hooks") or []):
        if isinstance(h, Mapping) and h.get("type") == "MixupHook":
            problems.append(
                f"custom_hooks[{i}] (MixupHook): configure batch mixing with the top-level "
                f"`mixup=dict(...)` instead (it also picks a loss that takes soft targets)"
            )
    if given is None or problems:
        return problems
    opts = mixup_options(cfg)
    if not (opts["mixup_alpha"] > 0 or opts["cutmix_alpha"] > 0 or opts["cutmix_minmax"]):
        problems.append("mixup: mixup_alpha, cutmix_alpha and cutmix_minmax all off; set one")
    model_nc = _model_num_classes(cfg)
    if opts["num_classes"] is None:
        problems.append("mixup.num_classes: missing; the model config has no num_classes")
    elif model_nc is not None and opts["num_classes"] != model_nc:
        problems.append(
            f"mixup.num_classes: {opts['num_classes']} differs from model.num_classes "
            f"{model_nc}; drop it (the model's is used) or make them equal"
        )
    model = cfg.get("model") if isinstance(cfg.get("model"), Mapping) else {}
    return problems + _loss_problems(model.get("loss"), opts["label_smoothing"])
