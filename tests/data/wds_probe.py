"""A probe hook for WebDataset tests (loaded through ``custom_imports``): writes the sample
ids each process trained on, read back from images whose red channel encodes the id
(``tests/test_webdataset.py`` writes them; eval transform, mean 0, std 1)."""

from __future__ import annotations

import json
import os

from acchooks import HOOKS, Hook
from acchooks.testing.shards import sample_ids


@HOOKS.register_module(force=True)
class WdsIdProbe(Hook):
    """Appends ``[epoch, iter, ids]`` per train batch to ``wds_ids_rank<r>.jsonl``."""

    def after_train_iter(self, runner) -> None:
        ids = sample_ids(runner.data_batch[0])
        rank = runner.accelerator.process_index
        path = os.path.join(runner.work_dir, f"wds_ids_rank{rank}.jsonl")
        with open(path, "a") as f:
            f.write(json.dumps([runner.epoch, runner.inner_iter, ids]) + "\n")
