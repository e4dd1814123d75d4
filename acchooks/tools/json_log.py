"""Reading the JSON-lines logs TextLoggerHook writes (``<work_dir>/<timestamp>.log.json``).

The first line is the run's meta (env_info, seed, ...); every other line is one record
with ``mode`` ('train' or 'val'), ``epoch``, ``iter``, ``step``, ``lr`` and the logged
values (``loss``, ``time``, ``accuracy_top-1``...). Train records of an epoch-based run
count ``iter`` within the epoch (1-based); those of an iteration-based run count it
from the start of training.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import sys
from dataclasses import dataclass, field
from typing import Any

from . import ToolError

# the builder's line in the text log: "...; 32 iterations per epoch, 32 optimizer steps ..."
_EPOCH_LENGTH = re.compile(r"\b(\d+) iterations per epoch")


@dataclass
class JsonLog:
    """A ``<timestamp>.log.json`` file read back: its train and val records, by mode."""

    path: str
    meta: dict[str, Any] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The file name without ``.log.json`` (the run's timestamp)."""
        base = os.path.basename(self.path)
        for suffix in (".json", ".log"):
            if base.endswith(suffix):
                base = base[: -len(suffix)]
        return base

    def of_mode(self, mode: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("mode") == mode]

    def keys(self, mode: str) -> list[str]:
        """Every key of the ``mode`` records, in first-seen order."""
        seen: dict[str, None] = {}
        for r in self.of_mode(mode):
            seen.update(dict.fromkeys(r))
        return [k for k in seen if k != "mode"]

    def iter_based(self) -> bool:
        """True when train ``iter`` keeps counting across epochs (IterBasedRunner)."""
        prev = None
        restarted = False
        for r in self.of_mode("train"):
            if prev is not None and r["epoch"] > prev["epoch"]:
                if r["iter"] <= prev["iter"]:
                    return False
                restarted = True
            prev = r
        return restarted

    def epoch_length(self) -> int:
        """Train iterations per epoch: from the run's text log next to this file
        (``<timestamp>.log``: "... N iterations per epoch"), else as mmcls's analyze_logs,
        the largest logged ``iter`` (exact when the log interval divides the epoch)."""
        logged = max((r["iter"] for r in self.of_mode("train")), default=0)
        text = self.path[: -len(".json")] if self.path.endswith(".log.json") else None
        if text and os.path.isfile(text):
            with open(text, encoding="utf-8", errors="replace") as f:
                for line in itertools.islice(f, 2000):
                    m = _EPOCH_LENGTH.search(line)
                    if m and int(m.group(1)) >= logged:
                        return int(m.group(1))
        return logged


def load_json_log(path: str | os.PathLike) -> JsonLog:
    """The meta and records of one log; unreadable lines are skipped with a warning."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ToolError(f"log file not found: {path}")
    log = JsonLog(path)
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                print(f"acchooks: warning: {path}, line {n}: not JSON, skipped", file=sys.stderr)
                continue
            if not isinstance(obj, dict):
                continue
            if "mode" not in obj:
                if not log.records and not log.meta:
                    log.meta = obj
                continue
            if obj["mode"] == "train" and not (
                isinstance(obj.get("epoch"), int) and isinstance(obj.get("iter"), int)
            ):
                print(
                    f"acchooks: warning: {path}, line {n}: train record without integer "
                    f"epoch/iter, skipped",
                    file=sys.stderr,
                )
                continue
            log.records.append(obj)
    if not log.records:
        raise ToolError(
            f"{path}: no train or val records; is it a <timestamp>.log.json "
            f"written by TextLoggerHook?"
        )
    return log


def describe_keys(log: JsonLog) -> str:
    """'train: a, b; val: c' — for error messages."""
    parts = []
    for mode in ("train", "val"):
        keys = [k for k in log.keys(mode) if k not in ("epoch", "iter")]
        if keys:
            parts.append(f"{mode}: {', '.join(keys)}")
    return "; ".join(parts) or "none"
