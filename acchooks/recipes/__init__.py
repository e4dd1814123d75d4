"""Training recipes beyond the loop's mechanics: batch mixing (:mod:`.mixup`)."""
