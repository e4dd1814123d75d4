"""The ``acchooks`` Python logger: console on every process at WARNING (INFO on the
main process), plus ``<work_dir>/<timestamp>.log`` written by the main process only."""
from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s - acchooks - %(levelname)s - %(message)s"


def get_logger(log_file: str | None = None, is_main: bool = True,
               level: int | str = logging.INFO) -> logging.Logger:
    logger = logging.getLogger("acchooks")
    for h in list(logger.handlers):  # a new run replaces the handlers of the last one
        logger.removeHandler(h)
        h.close()
    logger.propagate = False
    fmt = logging.Formatter(FORMAT)
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(fmt)
    logger.addHandler(console)
    if is_main and log_file is not None:
        fh = logging.FileHandler(log_file, mode="a")
        fh.setFormatter(fmt)
        logger.addHandler(fh)
    logger.setLevel(level if is_main else logging.ERROR)
    return logger
