"""The ``acchooks`` command's tools, one module each (MMClassification's ``tools/``):

* :mod:`.print_config` — ``acchooks print-config``: the merged, checked config;
* :mod:`.plot_curves` — ``acchooks plot-curves``: loss / metric curves of JSON logs;
* :mod:`.analyze_time` — ``acchooks analyze-time``: iteration time per epoch;
* :mod:`.vis_lr` — ``acchooks vis-lr``: the LR / momentum of every optimizer step;
* :mod:`.convert` — ``acchooks convert``: a foreign checkpoint to ``model.safetensors``;
* :mod:`.eval_metrics` — ``acchooks metrics``: metrics recomputed from per-sample outputs;
* :mod:`.confusion_matrix` — ``acchooks confusion-matrix``: their confusion matrix.

:mod:`.json_log` reads the ``<timestamp>.log.json`` files that TextLoggerHook writes.
Each tool module has ``add_parser(subparsers)`` and ``run(args) -> exit status``, plus a
public function that returns what it prints or plots.
"""

from __future__ import annotations

EXIT_BAD_INPUT = 2  # as train.py: the input (config, log, file) is at fault


class ToolError(Exception):
    """A problem with the user's input, reported as one line and exit status 2."""
