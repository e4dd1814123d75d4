"""``train.py --config CFG``: check the config, then build and run the Runner.

Every problem in the config is reported before any process group, model, data or file
exists; each process checks the same config, so all exit the same way (status 2).

``--dry-run`` builds everything, runs two train and two val iterations (EvalHook's
evaluation and/or a val workflow phase), saves and reloads a checkpoint, prints the hook
table and the hook timing table, and exits 0 - all in a temporary directory: nothing is
written to the work dir. A failure exits 1 with where it happened."""

from __future__ import annotations

import argparse
import itertools
import os
import os.path as osp
import shutil
import sys
import tempfile
import time
from typing import Any

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


# ---------------------------------------------------------------------------- dry run
DRY_ITERS = 2
EXIT_DRY_RUN_FAILED = 1


class FirstBatches:
    """A data loader cut to its first ``n`` batches (``len`` says so too); everything
    else (``set_epoch``, ``dataset``, ...) is the wrapped loader's."""

    def __init__(self, loader: Any, n: int):
        self.loader, self.n = loader, n

    def __iter__(self):
        return itertools.islice(iter(self.loader), self.n)

    def __len__(self) -> int:
        return min(self.n, len(self.loader))

    def __getattr__(self, name: str) -> Any:
        if name == "loader":  # not set yet (copy, pickle): no recursion
            raise AttributeError(name)
        return getattr(self.loader, name)


def _dry_run_config(cfg, tmp: str) -> tuple[Any, str | None]:
    """The config of a dry run: everything under ``tmp``, one short epoch (or 2 iters),
    evaluation and a val phase due in it; and the resume checkpoint, found read-only."""
    work_dir = cfg.work_dir
    resume = cfg.get("resume_from")
    if resume == "auto":  # look where the real run saves, read-only
        from ..checkpoint import find_latest

        out = (cfg.get("checkpoint_config") or {}).get("out_dir")
        where = osp.join(out, osp.basename(osp.abspath(work_dir))) if out else work_dir
        found, _ = find_latest(where) if osp.isdir(where) else (None, [])
        resume = str(found) if found else None
    cfg.resume_from = resume
    cfg.work_dir = osp.join(tmp, osp.basename(osp.abspath(work_dir)) or "work")
    runner = dict(cfg.runner)
    by_epoch = runner.get("type", "EpochBasedRunner") != "IterBasedRunner"
    if by_epoch:
        runner["max_epochs"] = 1
    else:
        runner["max_iters"] = DRY_ITERS
    cfg.runner = runner
    if cfg.get("checkpoint_config") is not None:
        cfg.checkpoint_config = {**cfg.checkpoint_config, "out_dir": None}
    has_val = cfg.data.get("val") is not None
    evaluation = cfg.get("evaluation")
    if evaluation is not None:
        ev_by_epoch = evaluation.get("by_epoch", True)
        cfg.evaluation = {
            **evaluation,
            "out_dir": None,
            "start": None,
            "interval": 1 if ev_by_epoch else DRY_ITERS,
        }
    log_cfg = cfg.get("log_config")
    if log_cfg is not None:  # TensorBoard & co. write under the temporary work dir
        cfg.log_config = {
            **log_cfg,
            "hooks": [
                {**h, "log_dir": None} if "log_dir" in h else h for h in log_cfg.get("hooks", [])
            ],
        }
    wants_val = any(p == "val" for p, _ in cfg.get("workflow", [("train", 1)]))
    cfg.workflow = [("train", DRY_ITERS if not by_epoch else 1)]
    if has_val and (wants_val or evaluation is None):
        cfg.workflow.append(("val", DRY_ITERS if not by_epoch else 1))
    cfg.hook_timing = {**(cfg.get("hook_timing") or {}), "sample_every": 1}
    return cfg, resume


def _where(runner: Any, step: str, e: BaseException) -> str:
    hook = getattr(e, "acchooks_hook", None)
    if runner is None:
        return "building the runner (model, optimizer, data loaders, hooks)"
    if hook:
        return f"hook {hook} ({runner.mode} phase)"
    if step == "run":
        return (
            f"the {runner.mode} phase (data loading or the model's "
            f"{'train' if runner.mode == 'train' else 'val'} step)"
        )
    return step


def dry_run(cfg, warnings: list[str], timestamp: str, main_proc: bool) -> int:
    """``train.py --dry-run``: see the module doc."""
    from ..logging import get_logger
    from ..runner import build_runner

    t0 = time.perf_counter()
    tmp = tempfile.mkdtemp(prefix="acchooks-dry-run-") if main_proc else None
    runner = None
    step = "build"
    logger = None
    try:
        # other processes learn rank 0's directory once the process group exists
        cfg, resume = _dry_run_config(cfg, tmp or tempfile.gettempdir())
        if main_proc:
            os.makedirs(cfg.work_dir, exist_ok=True)
        logger = get_logger(
            osp.join(cfg.work_dir, f"{timestamp}.log") if main_proc else None,
            is_main=main_proc,
            level=cfg.get("log_level", "INFO"),
        )
        for w in warnings:
            logger.warning(w)
        logger.info(
            f"Dry run: {DRY_ITERS} train + {DRY_ITERS} val iterations, a checkpoint "
            f"saved and reloaded, all in {tmp} (removed at the end)"
        )
        runner = build_runner(cfg, logger, timestamp)
        if runner.accelerator.num_processes > 1:
            from accelerate.utils import broadcast_object_list

            tmp = broadcast_object_list([tmp], from_process=0)[0]
            runner.work_dir = osp.join(tmp, osp.basename(cfg.work_dir))
        if runner.by_epoch:  # a resumed run may have done its epochs: one more
            runner.max_epochs = runner.epoch + 1
        else:
            runner._max_iters = runner.iter + DRY_ITERS
        runner.resume_inner_iter = 0  # FirstBatches cannot skip batches
        if resume:
            logger.info(f"Dry run: resumed from {resume} (read only)")
        for name, loader in list(runner.data_loaders.items()):
            runner.data_loaders[name] = FirstBatches(loader, DRY_ITERS)
        for hook in runner.hooks.hooks:  # EvalHook & co. evaluate on 2 batches
            loader = getattr(hook, "dataloader", None)
            if loader is not None and not isinstance(loader, FirstBatches):
                hook.dataloader = FirstBatches(loader, DRY_ITERS)
        step = "run"
        runner.run()
        step = "checkpoint save"
        path = runner.save_checkpoint(
            "dry_run", out_dir=osp.join(tmp, "checkpoint"), update_latest=False
        )
        step = "checkpoint reload"
        runner.resume(path)
        runner.accelerator.wait_for_everyone()  # all have read it before rank 0 removes it
        val = (
            f"{DRY_ITERS} val iterations"
            if "val" in runner.data_loaders
            else "no val data (data.val is not set)"
        )
        logger.info(
            f"Dry run OK in {time.perf_counter() - t0:.1f} s: built, "
            f"{DRY_ITERS} train iterations, {val}, checkpoint saved and "
            f"reloaded ({', '.join(sorted(os.listdir(path))) if main_proc else path})"
        )
        return 0
    except Exception as e:  # noqa: BLE001 - the dry run's job is to report it
        import traceback

        from ..errors import ConfigError

        where = _where(runner, step, e)
        msg = f"acchooks: dry run FAILED in {where}: {type(e).__name__}: {e}"
        if isinstance(e, ConfigError):
            msg = f"acchooks: dry run FAILED in {where}: {e}"
        if not main_proc:  # a failure on one rank only must still be visible
            msg = msg.replace("acchooks:", f"acchooks (rank {os.environ.get('RANK', '?')}):", 1)
        print("".join(traceback.format_exception(e)), file=sys.stderr)
        print(msg, file=sys.stderr)
        return EXIT_BAD_INPUT if isinstance(e, ConfigError) else EXIT_DRY_RUN_FAILED
    finally:
        if logger is not None:
            for h in list(logger.handlers):
                if hasattr(h, "baseFilename"):
                    logger.removeHandler(h)
                    h.close()
        if main_proc and tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
