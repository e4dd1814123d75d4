"""``train.py --dry-run``: build everything, run two train and two val iterations
(EvalHook's evaluation and/or a val workflow phase), save and reload a checkpoint, print
the hook table and the hook timing table, and exit 0 - all in a temporary directory:
nothing is written to the work dir. A failure exits 1 (2 for bad input) naming where it
happened. It drives the runner through its public methods only."""

from __future__ import annotations

import itertools
import os
import os.path as osp
import shutil
import sys
import tempfile
import time
from typing import Any

DRY_ITERS = 2
EXIT_DRY_RUN_FAILED = 1
EXIT_BAD_INPUT = 2


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


def _first_batches(loader: Any) -> Any:
    return loader if isinstance(loader, FirstBatches) else FirstBatches(loader, DRY_ITERS)


def _resume_read_only(cfg) -> str | None:
    """The checkpoint the real run would resume from, found without writing anything."""
    resume = cfg.get("resume_from")
    if resume != "auto":
        return resume
    from ..checkpoint import find_latest
    from ..runner.checkpointer import checkpoint_dir

    out = (cfg.get("checkpoint_config") or {}).get("out_dir")
    where = checkpoint_dir(cfg.work_dir, out)
    found, _ = find_latest(where, full_state=True) if osp.isdir(where) else (None, [])
    return str(found) if found else None


def _dry_run_config(cfg, tmp: str) -> tuple[Any, str | None]:
    """The config of a dry run: everything under ``tmp``, one short epoch (or 2 iters),
    evaluation and a val phase due in it; and the resume checkpoint, found read-only."""
    resume = cfg.resume_from = _resume_read_only(cfg)
    cfg.work_dir = osp.join(tmp, osp.basename(osp.abspath(cfg.work_dir)) or "work")
    runner = dict(cfg.runner)
    by_epoch = runner.get("type", "EpochBasedRunner") != "IterBasedRunner"
    runner.update({"max_epochs": 1} if by_epoch else {"max_iters": DRY_ITERS})
    cfg.runner = runner
    if cfg.get("checkpoint_config") is not None:
        cfg.checkpoint_config = {**cfg.checkpoint_config, "out_dir": None}
    evaluation = cfg.get("evaluation")
    if evaluation is not None:
        interval = 1 if evaluation.get("by_epoch", True) else DRY_ITERS
        cfg.evaluation = {**evaluation, "out_dir": None, "start": None, "interval": interval}
    log_cfg = cfg.get("log_config")
    if log_cfg is not None:  # TensorBoard & co. write under the temporary work dir
        hooks = [{**h, "log_dir": None} if "log_dir" in h else h for h in log_cfg.get("hooks", [])]
        cfg.log_config = {**log_cfg, "hooks": hooks}
    wants_val = any(p == "val" for p, _ in cfg.get("workflow", [("train", 1)]))
    cfg.workflow = [("train", DRY_ITERS if not by_epoch else 1)]
    if cfg.data.get("val") is not None and (wants_val or evaluation is None):
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


def _shorten(runner, tmp: str | None, cfg) -> str | None:
    """Two iterations from where the (possibly resumed) run is, on cut loaders; every
    process in rank 0's temporary directory."""
    if runner.accelerator.num_processes > 1:
        from accelerate.utils import broadcast_object_list

        tmp = broadcast_object_list([tmp], from_process=0)[0]
        runner.work_dir = osp.join(tmp, osp.basename(cfg.work_dir))
    if runner.by_epoch:  # a resumed run may have done its epochs: one more
        runner.set_length(max_epochs=runner.epoch + 1)
    else:
        runner.set_length(max_iters=runner.iter + DRY_ITERS)
    runner.state.restart_epoch()  # FirstBatches cannot skip batches
    runner.wrap_dataloaders(_first_batches)  # EvalHook's too: it evaluates on 2 batches
    return tmp


def _report_failure(e: BaseException, where: str, main_proc: bool) -> int:
    import traceback

    from ..errors import ConfigError

    msg = f"acchooks: dry run FAILED in {where}: {type(e).__name__}: {e}"
    if isinstance(e, ConfigError):
        msg = f"acchooks: dry run FAILED in {where}: {e}"
    if not main_proc:  # a failure on one rank only must still be visible
        msg = msg.replace("acchooks:", f"acchooks (rank {os.environ.get('RANK', '?')}):", 1)
    print("".join(traceback.format_exception(e)), file=sys.stderr)
    print(msg, file=sys.stderr)
    return EXIT_BAD_INPUT if isinstance(e, ConfigError) else EXIT_DRY_RUN_FAILED


def _close_files(logger) -> None:
    for h in list(logger.handlers):
        if hasattr(h, "baseFilename"):
            logger.removeHandler(h)
            h.close()


def dry_run(cfg, warnings: list[str], timestamp: str, main_proc: bool) -> int:
    """``train.py --dry-run``: see the module doc."""
    from ..logging import get_logger
    from ..runner import build_runner

    t0 = time.perf_counter()
    tmp = tempfile.mkdtemp(prefix="acchooks-dry-run-") if main_proc else None
    runner, logger, step = None, None, "build"
    try:
        # other processes learn rank 0's directory once the process group exists
        cfg, resume = _dry_run_config(cfg, tmp or tempfile.gettempdir())
        if main_proc:
            os.makedirs(cfg.work_dir, exist_ok=True)
        log_file = osp.join(cfg.work_dir, f"{timestamp}.log") if main_proc else None
        logger = get_logger(log_file, is_main=main_proc, level=cfg.get("log_level", "INFO"))
        for w in warnings:
            logger.warning(w)
        logger.info(
            f"Dry run: {DRY_ITERS} train + {DRY_ITERS} val iterations, a checkpoint "
            f"saved and reloaded, all in {tmp} (removed at the end)"
        )
        runner = build_runner(cfg, logger, timestamp)
        tmp = _shorten(runner, tmp, cfg)
        if resume:
            logger.info(f"Dry run: resumed from {resume} (read only)")
        step = "run"
        runner.run()
        step = "checkpoint save"
        where = osp.join(tmp, "checkpoint")
        path = runner.checkpointer.save("dry_run", latest=False, directory=where)
        step = "checkpoint reload"
        runner.checkpointer.resume(path)
        runner.accelerator.wait_for_everyone()  # all have read it before rank 0 removes it
        val = f"{DRY_ITERS} val iterations" if "val" in runner.data_loaders else None
        logger.info(
            f"Dry run OK in {time.perf_counter() - t0:.1f} s: built, "
            f"{DRY_ITERS} train iterations, {val or 'no val data (data.val is not set)'}, "
            f"checkpoint saved and reloaded "
            f"({', '.join(sorted(os.listdir(path))) if main_proc else path})"
        )
        return 0
    except Exception as e:  # noqa: BLE001 - the dry run's job is to report it
        return _report_failure(e, _where(runner, step, e), main_proc)
    finally:
        if logger is not None:
            _close_files(logger)
        if main_proc and tmp:
            shutil.rmtree(tmp, ignore_errors=True)
