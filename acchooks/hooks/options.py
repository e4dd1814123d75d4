"""The option sets of the hook machinery read from top-level config keys:
``progress_config`` (:mod:`.progress`, and ``progress_hook`` in the runner builder),
``hook_timing`` (the HookTable's timing in :mod:`.table`, and the runner) and
``checkpoint_config`` (:class:`.checkpoint.CheckpointHook`).

Their consumers take the defaults from here; :mod:`acchooks.config.schema` checks
configs against the same declarations. Plain Python only: the first pass of the config
check reads this module before torch is imported (see
:func:`acchooks.config.optionset.declarations`).
"""

from __future__ import annotations

from ..config.checks import (
    boolean,
    int_at_least,
    integer,
    literal,
    non_negative_int,
    number_at_least,
    one_of,
    optional,
    positive_int,
    string,
)
from ..config.optionset import Option, OptionSet

MODES = ("auto", "bar", "lines")

PROGRESS_CONFIG = OptionSet(
    "progress_config",
    [
        Option("enable", boolean, True, "False: no progress at all (train.py --no-progress)"),
        Option("type", string, "ProgressBarHook", "the hook that shows progress"),
        # ProgressBarHook's arguments (tests/test_checks.py keeps them equal to its signature)
        Option("mode", one_of(MODES), "auto", "'bar', 'lines', or 'auto': bar on a terminal"),
        Option("interval", non_negative_int, 0, "lines mode: every N iterations; 0: every_s"),
        Option("every_s", number_at_least(0), 10.0, "lines mode with interval=0: seconds"),
        Option("refresh_s", number_at_least(0), 0.2, "bar mode: redraw at most this often"),
        Option("leave", boolean, True, "bar mode: keep finished epoch bars on screen"),
    ],
    "``progress_config=dict(enable=True, mode='auto', ...)``: the ProgressBarHook.",
)
# the keys read whatever hook type= names; the others are ProgressBarHook's arguments
PROGRESS_OWN = ("enable", "type")

HOOK_TIMING = OptionSet(
    "hook_timing",
    [
        Option("enable", boolean, True, "False: never time the hooks"),
        Option(
            "sample_every",
            literal("auto") | int_at_least(1),
            "auto",
            "time about one iteration in N (1: all); 'auto': as the iteration time allows",
        ),
        Option(
            "log_every",
            non_negative_int,
            0,
            "also log the timing table every N train log lines (0: off)",
        ),
    ],
    "``hook_timing=dict(enable=True, sample_every='auto', log_every=0)``.",
)

CHECKPOINT_CONFIG = OptionSet(
    "checkpoint_config",
    [
        Option(
            "interval",
            (literal(-1) | positive_int).noted("-1: only the last, with save_last"),
            -1,
            "save every N epochs (iterations with by_epoch=False); -1: only the last",
        ),
        Option("by_epoch", boolean, True, "epoch_N (True) or iter_N checkpoints"),
        Option("save_optimizer", boolean, True, "False: weights only (load_from, not resume)"),
        Option(
            "out_dir",
            optional(string.named("a path")),
            None,
            "checkpoints go to <out_dir>/<basename of work_dir>; None: the work dir",
        ),
        Option("max_keep_ckpts", integer, -1, "keep the newest N; 0 or less: keep all"),
        Option("save_last", boolean, True, "also save at the end of the run"),
        Option(
            "async_save",
            boolean,
            False,
            "True: copy the state to host memory and write it in a background thread",
        ),
    ],
    "``checkpoint_config=dict(interval=1, max_keep_ckpts=3)``: the CheckpointHook's options.",
)
