"""``acchooks metrics --results DIR [--metrics M ...] [--metric-options k=v ...]``

The metrics of the per-sample outputs ``acchooks test --out-samples DIR`` wrote,
recomputed offline by the same functions the EvalHook and ``acchooks test`` call
(``acchooks.evaluation.evaluate``). Without ``--metrics`` these are the metrics and
``metric_options`` of that test run, and the recomputed values are compared with the
ones it reported (``--check``: exit status 1 if any differs). ``--metrics`` picks others
(e.g. ``precision recall f1_score`` after an ``accuracy`` run); the stored options that
they accept are kept, and ``--metric-options`` (``topk=(1,5)``, ``thrs=0.5``,
``average_mode=none``, ``thr=0.3``, ``k=2``) overrides them.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..config import DictAction
from ..errors import ConfigError
from . import ToolError

EXIT_DIFFERENT = 1


def recompute(
    samples: Any, metrics: list[str] | None = None, options: dict[str, Any] | None = None
) -> tuple[list[str], dict[str, Any], dict[str, float]]:
    """The metrics, their options and their values for ``samples`` (an
    :class:`~acchooks.evaluation.outputs.EvalSamples`); module docstring for the defaults."""
    from ..evaluation.metrics import check_metrics, evaluate
    from ..registry import METRICS, accepted_arguments

    metric = list(metrics or samples.meta.get("metric") or ["accuracy"])
    opts = dict(samples.meta.get("metric_options") or {})
    if metrics:  # the stored options the chosen metrics accept
        accepted: set[str] = set()
        for m in metric:
            if m in METRICS:
                accepted |= accepted_arguments(METRICS.get(m))[0]
        opts = {k: v for k, v in opts.items() if k in accepted}
    opts.update(options or {})
    if "average_mode" in opts and opts["average_mode"] is None:  # the command line's 'none'
        opts["average_mode"] = "none"
    problems = check_metrics(metric, opts, "evaluation")
    if problems:
        raise ToolError("; ".join(_cli_names(p) for p in problems))
    try:
        return metric, opts, evaluate(samples.scores, samples.targets, metric, opts)
    except (ValueError, ConfigError) as e:  # e.g. a multi-label metric on class indices
        raise ToolError(_cli_names(str(e))) from None


def _cli_names(problem: str) -> str:
    """A config-check message in terms of this command's options."""
    problem = problem.replace("evaluation.metric_options", "--metric-options")
    return problem.replace("evaluation.metric", "--metrics")


def differences(results: dict[str, float], stored: dict[str, Any]) -> list[str]:
    """The recomputed values that are not exactly those ``acchooks test`` stored."""
    return [
        f"{k}: {v!r} (stored {stored.get(k)!r})" for k, v in results.items() if stored.get(k) != v
    ]


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``acchooks metrics``."""
    p = subparsers.add_parser(
        "metrics",
        help="recompute metrics from the per-sample outputs of acchooks test --out-samples",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--results", required=True, metavar="DIR", help="acchooks test --out-samples")
    p.add_argument("--metrics", nargs="+", help="default: those of the test run")
    p.add_argument(
        "--metric-options",
        nargs="+",
        action=DictAction,
        default={},
        help="override metric options: topk=(1,5) thrs=0.5 average_mode=none thr=0.3 k=2",
    )
    p.add_argument("--out", help="also write the results to this JSON file")
    p.add_argument(
        "--check", action="store_true", help="exit status 1 if a value differs from the stored"
    )
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """``acchooks metrics``: print (and optionally write) the recomputed metrics."""
    from ..cli.test import format_table
    from ..evaluation.outputs import load_samples
    from .plot_curves import dump_json

    samples = load_samples(args.results)
    metric, opts, results = recompute(samples, args.metrics, args.metric_options)
    meta = samples.meta
    print(
        f"{args.results}: {len(samples.indices)} samples of data.{meta.get('split')}, "
        f"{meta.get('checkpoint')} ({meta.get('weights')} weights); {', '.join(metric)} "
        f"with {opts or 'default options'}"
    )
    print(format_table(results))
    if args.out:
        dump_json({"metric": metric, "metric_options": opts, **results}, args.out)
        print(f"results written to {args.out}")
    stored = meta.get("results") or {}
    same_question = metric == meta.get("metric") and opts == (meta.get("metric_options") or {})
    if not same_question:
        return 0
    diff = differences(results, stored)
    if diff:
        print("differs from the results acchooks test reported:\n  " + "\n  ".join(diff))
        return EXIT_DIFFERENT if args.check else 0
    print("equal to the results acchooks test reported")
    return 0


__all__ = ["add_parser", "differences", "recompute", "run"]
