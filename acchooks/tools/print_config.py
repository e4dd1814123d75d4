"""``acchooks print-config CFG [--cfg-options a.b=1 ...]``

The config as a run would use it: the file with its ``_base_`` files merged, then the
``--cfg-options`` overrides, printed as Python (the text train.py writes into the work
dir). The config is checked first, as train.py does; problems are reported together and
the exit status is 2.
"""

from __future__ import annotations

import argparse
import sys

from ..config import Config, DictAction


def load_checked_config(
    path: str, cfg_options: dict | None = None, ignore: tuple[str, ...] = ()
) -> tuple[Config, list[str]]:
    """Config file + overrides, checked with :func:`acchooks.config.schema.check_config`
    (problems whose dotted path starts with one of ``ignore`` are dropped); returns the
    config and the warnings, raises ConfigError listing every problem."""
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    from ..config.schema import check_or_raise

    return cfg, check_or_raise(cfg, path, ignore)


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "print-config",
        help="print the merged, checked config",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("config", metavar="CFG", help="Python config file")
    p.add_argument(
        "--cfg-options",
        nargs="+",
        action=DictAction,
        default={},
        help="override config keys: a.b=1 c=[1,2] d=None",
    )
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    cfg, warnings = load_checked_config(args.config, args.cfg_options)
    for w in warnings:
        print(f"acchooks: warning: {w}", file=sys.stderr)
    sys.stdout.write(cfg.pretty_text)
    return 0
