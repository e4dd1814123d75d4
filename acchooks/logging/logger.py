"""The ``acchooks`` Python logger: console on every process at WARNING (INFO on the
main process), plus ``<work_dir>/<timestamp>.log`` written by the main process only.

While a progress bar is on screen (:class:`~acchooks.hooks.progress.ProgressBarHook`),
console records are written with ``tqdm.write``: the bar is cleared, the line printed,
the bar redrawn below it, so log lines never end up glued to a bar.
"""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s - acchooks - %(levelname)s - %(message)s"

_bars = 0  # progress bars on screen (set by the progress hook)


def progress_bar_opened() -> None:
    global _bars
    _bars += 1


def progress_bar_closed() -> None:
    global _bars
    _bars = max(_bars - 1, 0)


class ConsoleHandler(logging.StreamHandler):
    """A StreamHandler that writes above an active tqdm progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        if not _bars:
            super().emit(record)
            return
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=self.stream)
            self.flush()
        except RecursionError:
            raise
        except Exception:  # noqa: BLE001 - logging must not break training
            self.handleError(record)


def get_logger(
    log_file: str | None = None, is_main: bool = True, level: int | str = logging.INFO
) -> logging.Logger:
    logger = logging.getLogger("acchooks")
    for h in list(logger.handlers):  # a new run replaces the handlers of the last one
        logger.removeHandler(h)
        h.close()
    logger.propagate = False
    fmt = logging.Formatter(FORMAT)
    console = ConsoleHandler(sys.stdout)
    console.setFormatter(fmt)
    logger.addHandler(console)
    if is_main and log_file is not None:
        fh = logging.FileHandler(log_file, mode="a")
        fh.setFormatter(fmt)
        logger.addHandler(fh)
    logger.setLevel(level if is_main else logging.ERROR)
    return logger
