"""The ``acchooks`` command (also ``python -m acchooks``):

    acchooks train --config CFG [...]         train (as train.py / acchooks-train)
    acchooks test --config CFG --checkpoint C  evaluate (as acchooks-test)
    acchooks print-config CFG                  the merged, checked config
    acchooks plot-curves LOG.json --keys ...   loss / metric curves of JSON logs
    acchooks analyze-time LOG.json             iteration time per epoch
    acchooks vis-lr CFG --out lr.png           the LR / momentum of every optimizer step
    acchooks convert IN OUT                    a .pth / mmcls checkpoint to model.safetensors
    acchooks metrics --results DIR             metrics recomputed from test --out-samples DIR
    acchooks confusion-matrix --results DIR    its confusion matrix (text, --csv, --out PNG)
    acchooks predict --checkpoint C --images D top-k classes of images, by the checkpoint alone

Problems with the input (config, log, checkpoint) are one message on stderr and exit
status 2.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import ConfigError

_DELEGATED = {
    "train": "Train a model (train.py); see acchooks train --help",
    "test": "Evaluate a checkpoint; see acchooks test --help",
}


def _delegate(name: str, argv: list[str]) -> int:
    if name == "train":
        from .. import signals

        signals.install()  # before the imports: see acchooks.signals
        from .train import main as train_main

        return train_main(argv, prog="acchooks train")
    from .test import main as test_main

    return test_main(argv, prog="acchooks test")


def build_parser() -> argparse.ArgumentParser:
    from ..tools import (
        analyze_time,
        confusion_matrix,
        convert,
        eval_metrics,
        plot_curves,
        predict,
        print_config,
        vis_lr,
    )

    parser = argparse.ArgumentParser(
        prog="acchooks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, text in _DELEGATED.items():  # parsed by cli/train.py and cli/test.py
        sub.add_parser(name, help=text, add_help=False)
    for module in (
        print_config,
        plot_curves,
        analyze_time,
        vis_lr,
        convert,
        eval_metrics,
        confusion_matrix,
        predict,
    ):
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in _DELEGATED:
        return _delegate(argv[0], argv[1:])
    args = build_parser().parse_args(argv)
    from ..tools import EXIT_BAD_INPUT, ToolError

    try:
        return args.func(args)
    except (ConfigError, ToolError) as e:
        print(f"acchooks {args.command}: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
