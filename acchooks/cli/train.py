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

from .. import signals
from ..config import Config, DictAction
from ..errors import ConfigError, RunError
from ..signals import EXIT_PREEMPTED
from .workdir_lock import lock_for_run

EXIT_BAD_INPUT = 2
EXIT_RUN_FAILED = 1  # a RunError: a corrupt sample, nonfinite='raise' (no requeue)


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
    """``train.py`` / ``acchooks train``: the exit status (see docs/launching.md)."""
    signals.install()  # idempotent: train.py and `acchooks train` already did, first thing
    args = parse_args(argv, prog)
    main_proc = _is_main()
    try:
        cfg, warnings = load_config(args)
        if args.dry_run:  # writes nothing to the work dir: no lock (docs/configs.md)
            from ..hooks.logger.text import now_timestamp
            from .dry_run import dry_run

            stamp = now_timestamp(cfg.work_dir if main_proc else None)
            return dry_run(cfg, warnings, stamp, main_proc)
        lock = lock_for_run(cfg.work_dir, main_proc)
    except ConfigError as e:
        return report_bad_input(e)
    try:
        return _train(args, cfg, warnings, lock, main_proc)
    finally:
        if lock is not None:
            lock.release()


def _one_process() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) == 1


def _train(args, cfg: Config, warnings: list[str], lock, main_proc: bool) -> int:
    """Everything after the config check, with the work dir locked (or refused: several
    processes then learn it together in build_runner, and all exit 2)."""
    owner = main_proc and lock is not None and lock.refusal is None  # may write the work dir
    if lock is not None and lock.refusal and _one_process():
        return report_bad_input(ConfigError(lock.refusal))
    if signals.received() and _one_process():  # nothing built yet: stop right here
        return _stopped_before_run(cfg, signals.received(), owner, print_=True)
    from ..hooks.logger.text import now_timestamp
    from ..logging import get_logger
    from ..runner import build_runner
    from ..runner.preemption import Preempted, signalled_before_run

    timestamp = now_timestamp(cfg.work_dir if owner else None)  # only the owner writes logs
    if owner:
        cfg.dump(osp.join(cfg.work_dir, osp.basename(args.config)))
    logger = get_logger(
        osp.join(cfg.work_dir, f"{timestamp}.log") if owner else None,
        is_main=main_proc,
        level=cfg.get("log_level", "INFO"),
    )
    for w in [*warnings, *([lock.warning] if lock is not None and lock.warning else [])]:
        logger.warning(w)
    logger.info(f"Config:\n{cfg.pretty_text}")
    try:
        runner = build_runner(cfg, logger, timestamp)
        signum = signalled_before_run(runner.accelerator)  # all processes, once
        if signum:
            return _stopped_before_run(cfg, signum, owner, logger, runner.state.iters_done)
        runner.run()
    except ConfigError as e:  # also WorkDirBusy, on every process: the main one prints
        if main_proc:
            logger.error(f"acchooks: error: {e}")
        else:  # as report_bad_input: let the main process print and exit first
            time.sleep(OTHERS_WAIT_S)
        return EXIT_BAD_INPUT
    except RunError as e:
        if main_proc or not e.every_process:  # a joint decision: the main process says it
            logger.error(f"acchooks: error: {e}")
        return EXIT_RUN_FAILED
    except Preempted as e:
        logger.warning(f"{e}; exiting with status {EXIT_PREEMPTED} (resume with --resume auto)")
        return EXIT_PREEMPTED
    return 0


def _stopped_before_run(cfg, signum: int, owner: bool, logger=None, iters=None, print_=False):
    """A signal before the first iteration: nothing new saved, the marker written (a
    launcher reports 75 as 1), the requeue status."""
    if owner:
        record = {"signal": signals.name(signum), "checkpoint": None, "iter": iters}
        record["resume_from"] = cfg.get("resume_from")  # unchanged: nothing was saved
        signals.write_marker(cfg.work_dir, record)
    msg = (
        f"{signals.describe(signum)} before training started: nothing saved; exiting with "
        f"status {EXIT_PREEMPTED} (resume with --resume auto)"
    )
    if logger is not None:
        logger.warning(msg)
    elif print_ and owner:
        print(f"acchooks: {msg}", file=sys.stderr)
    return EXIT_PREEMPTED


if __name__ == "__main__":
    sys.exit(main())
