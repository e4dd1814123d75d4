"""``train.py --config CFG``: check the config, then build and run the Runner.

Every problem in the config is reported before any process group, model, data or file
exists; each process checks the same config, so all exit the same way (status 2)."""
from __future__ import annotations

import argparse
import os
import os.path as osp
import sys

from ..config import Config, DictAction, import_custom_modules
from ..errors import ConfigError

EXIT_BAD_INPUT = 2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Train a model with acchooks")
    p.add_argument("--config", required=True, help="Python config file")
    p.add_argument("--work-dir", help="where logs and checkpoints go (default work_dirs/<config>)")
    p.add_argument("--cfg-options", nargs="+", action=DictAction, default={},
                   help="override config keys: a.b=1 c=[1,2] d=None")
    p.add_argument("--seed", type=int, help="random seed (overrides the config)")
    p.add_argument("--deterministic", action="store_true", help="deterministic algorithms")
    p.add_argument("--resume-from", help="checkpoint directory to resume, or 'auto'")
    p.add_argument("--resume", choices=["auto"], help="'auto': resume the newest complete checkpoint")
    p.add_argument("--load-from", help="weights to start from (weights only)")
    return p.parse_args(argv)


def _is_main() -> bool:
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0"))) == 0


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
    import_custom_modules(cfg.get("custom_imports"))
    from ..config.schema import check_config
    problems, warnings = check_config(cfg)
    if problems:
        raise ConfigError(problems, source=args.config)
    return cfg, warnings


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfg, warnings = load_config(args)
    except ConfigError as e:
        if _is_main():
            print(f"acchooks: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT

    from ..hooks.logger.text import now_timestamp
    from ..logging import get_logger
    from ..runner import build_runner

    timestamp = now_timestamp()
    main_proc = _is_main()
    if main_proc:
        os.makedirs(cfg.work_dir, exist_ok=True)
        cfg.dump(osp.join(cfg.work_dir, osp.basename(args.config)))
    logger = get_logger(osp.join(cfg.work_dir, f"{timestamp}.log") if main_proc else None,
                        is_main=main_proc, level=cfg.get("log_level", "INFO"))
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
