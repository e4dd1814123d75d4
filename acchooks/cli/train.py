"""``train.py --config CFG``: check the config, then build and run the Runner.

Every problem in the config is reported before any process group, model, data or file
exists; each process checks the same config, so all exit the same way (status 2).

``--dry-run``: see :mod:`acchooks.cli.dry_run`."""

from __future__ import annotations

import argparse
import os
import os.path as osp
import sys
import time

from ..config import Config, DictAction
from ..errors import ConfigError

EXIT_BAD_INPUT = 2


def parse_args(argv: list[str] | None = None, prog: str | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=prog, description="Train a model with acchooks")
    p.add_argument("--config", required=True, help="Python config file")
    p.add_argument("--work-dir", help="where logs and checkpoints go (default work_dirs/<config>)")
    p.add_argument(
        "--cfg-options",
        nargs="+",
        action=DictAction,
        default={},
        help="override config keys: a.b=1 c=[1,2] d=None",
    )
    p.add_argument("--seed", type=int, help="random seed (overrides the config)")
    p.add_argument("--deterministic", action="store_true", help="deterministic algorithms")
    p.add_argument("--resume-from", help="checkpoint directory to resume, or 'auto'")
    p.add_argument(
        "--resume", choices=["auto"], help="'auto': resume the newest complete checkpoint"
    )
    p.add_argument("--load-from", help="weights to start from (weights only)")
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar / progress lines (progress_config=dict(enable=False))",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="build everything, run 2 train + 2 val iterations, save and reload a "
        "checkpoint in a temporary directory, print the hook tables, exit",
    )
    return p.parse_args(argv)


def _is_main() -> bool:
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0"))) == 0


# Under a launcher every process checks the config, and all exit with EXIT_BAD_INPUT; only
# the main process prints. The others wait first: torchrun / accelerate launch stop the
# remaining workers as soon as one exits, and a check that takes 0.1 s (a misspelled key)
# could otherwise see rank 0 stopped before it has printed its message.
OTHERS_WAIT_S = 5.0


def report_bad_input(e: ConfigError) -> int:
    """Print ``e`` on the main process (the others wait, see above); the exit status."""
    if _is_main():
        print(f"acchooks: error: {e}", file=sys.stderr)
    else:
        time.sleep(OTHERS_WAIT_S)
    return EXIT_BAD_INPUT


def load_config(args: argparse.Namespace) -> tuple[Config, list[str]]:
    """Config file + command line, checked; raises ConfigError listing every problem."""
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    name = osp.splitext(osp.basename(args.config))[0]
    cfg.work_dir = args.work_dir or cfg.get("work_dir") or osp.join("work_dirs", name)
    if args.seed is not None:
        cfg.seed = args.seed
    if args.deterministic:
        cfg.deterministic = True
    if args.resume_from or args.resume:
        cfg.resume_from = args.resume_from or args.resume
    if args.load_from:
        cfg.load_from = args.load_from
    if getattr(args, "no_progress", False):
        cfg.progress_config = {**(cfg.get("progress_config") or {}), "enable": False}
    from ..config.schema import check_or_raise

    return cfg, check_or_raise(cfg, args.config)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = parse_args(argv, prog)
    try:
        cfg, warnings = load_config(args)
    except ConfigError as e:
        return report_bad_input(e)

    from ..hooks.logger.text import now_timestamp
    from ..logging import get_logger
    from ..runner import build_runner

    timestamp = now_timestamp()
    main_proc = _is_main()
    if args.dry_run:
        from .dry_run import dry_run

        return dry_run(cfg, warnings, timestamp, main_proc)
    if main_proc:
        os.makedirs(cfg.work_dir, exist_ok=True)
        cfg.dump(osp.join(cfg.work_dir, osp.basename(args.config)))
    logger = get_logger(
        osp.join(cfg.work_dir, f"{timestamp}.log") if main_proc else None,
        is_main=main_proc,
        level=cfg.get("log_level", "INFO"),
    )
    for w in warnings:
        logger.warning(w)
    logger.info(f"Config:\n{cfg.pretty_text}")
    from ..runner.preemption import EXIT_PREEMPTED, Preempted

    try:
        runner = build_runner(cfg, logger, timestamp)
        runner.run()
    except ConfigError as e:
        logger.error(f"acchooks: error: {e}")
        return EXIT_BAD_INPUT
    except Preempted as e:
        logger.warning(f"{e}; exiting with status {EXIT_PREEMPTED} (resume with --resume auto)")
        return EXIT_PREEMPTED
    return 0


if __name__ == "__main__":
    sys.exit(main())
