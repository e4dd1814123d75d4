"""``SeededMixup``: timm's ``Mixup`` drawing from a generator of its own.

timm's ``Mixup`` (and its box functions) draw from NumPy's global RNG. This subclass
keeps timm's constructor, arguments and target arithmetic (``mixup_target``) and makes
the same draws, in the same order, from ``self.rng``, a private legacy
``numpy.random.RandomState``: seeded with ``s`` it draws exactly what timm draws after
``np.random.seed(s)``, so the outputs are bitwise timm's. The global RNG is never
touched, and reseeding costs microseconds (saving and restoring the global state would
cost more than the mixing of a small batch). Elements blended by mixup in ``pair`` and
``elem`` modes are blended in place (the same float32 products and sums as timm's, two
temporary tensors fewer per element). Draw order and maths follow ``timm/data/mixup.py``
(Apache-2.0, Ross Wightman).
"""

from __future__ import annotations

import numpy as np
import torch
from timm.data import Mixup


def cutmix_bbox_and_lam(
    rng: np.random.RandomState,
    img_shape: tuple[int, ...],
    lam: float,
    ratio_minmax: list[float] | None = None,
    correct_lam: bool = True,
) -> tuple[tuple[int, int, int, int], float]:
    """timm's ``cutmix_bbox_and_lam`` (with ``rand_bbox``/``rand_bbox_minmax``) on ``rng``."""
    img_h, img_w = img_shape[-2:]
    if ratio_minmax is not None:
        cut_h = rng.randint(int(img_h * ratio_minmax[0]), int(img_h * ratio_minmax[1]))
        cut_w = rng.randint(int(img_w * ratio_minmax[0]), int(img_w * ratio_minmax[1]))
        yl = rng.randint(0, img_h - cut_h + 1)
        xl = rng.randint(0, img_w - cut_w + 1)
        yu, xu = yl + cut_h, xl + cut_w
    else:
        ratio = np.sqrt(1 - lam)
        cut_h, cut_w = int(img_h * ratio), int(img_w * ratio)
        cy, cx = rng.randint(0, img_h), rng.randint(0, img_w)
        yl = np.clip(cy - cut_h // 2, 0, img_h)
        yu = np.clip(cy + (cut_h + 1) // 2, 0, img_h)
        xl = np.clip(cx - cut_w // 2, 0, img_w)
        xu = np.clip(cx + (cut_w + 1) // 2, 0, img_w)
    if correct_lam or ratio_minmax is not None:
        lam = 1.0 - (yu - yl) * (xu - xl) / float(img_h * img_w)
    return (yl, yu, xl, xu), lam


class SeededMixup(Mixup):
    """timm's ``Mixup`` with every draw from ``self.rng`` (see the module docstring)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.rng = np.random.RandomState(0)

    def seed(self, seed: int) -> None:
        """Reseed ``rng`` as ``np.random.seed([low 32 bits, high 32 bits])`` would."""
        self.rng.seed([seed & 0xFFFFFFFF, seed >> 32])

    def _params_per_elem(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        rng = self.rng
        lam = np.ones(batch_size, dtype=np.float32)
        use_cutmix = np.zeros(batch_size, dtype=bool)
        if self.mixup_enabled:
            if self.mixup_alpha > 0.0 and self.cutmix_alpha > 0.0:
                use_cutmix = rng.rand(batch_size) < self.switch_prob
                lam_mix = np.where(
                    use_cutmix,
                    rng.beta(self.cutmix_alpha, self.cutmix_alpha, size=batch_size),
                    rng.beta(self.mixup_alpha, self.mixup_alpha, size=batch_size),
                )
            elif self.mixup_alpha > 0.0:
                lam_mix = rng.beta(self.mixup_alpha, self.mixup_alpha, size=batch_size)
            else:
                use_cutmix = np.ones(batch_size, dtype=bool)
                lam_mix = rng.beta(self.cutmix_alpha, self.cutmix_alpha, size=batch_size)
            lam = np.where(rng.rand(batch_size) < self.mix_prob, lam_mix.astype(np.float32), lam)
        return lam, use_cutmix

    def _params_per_batch(self) -> tuple[float, bool]:
        rng = self.rng
        lam, use_cutmix = 1.0, False
        if self.mixup_enabled and rng.rand() < self.mix_prob:
            if self.mixup_alpha > 0.0 and self.cutmix_alpha > 0.0:
                use_cutmix = rng.rand() < self.switch_prob
                alpha = self.cutmix_alpha if use_cutmix else self.mixup_alpha
            elif self.mixup_alpha > 0.0:
                alpha = self.mixup_alpha
            else:
                use_cutmix, alpha = True, self.cutmix_alpha
            lam = float(rng.beta(alpha, alpha))
        return lam, use_cutmix

    def _box(self, shape: tuple[int, ...], lam: float) -> tuple[tuple[int, ...], float]:
        return cutmix_bbox_and_lam(self.rng, shape, lam, self.cutmix_minmax, self.correct_lam)

    @staticmethod
    def _blend(x: torch.Tensor, x_orig: torch.Tensor, i: np.ndarray, lam: np.ndarray) -> None:
        """timm's ``x[i] = x[i] * lam + x_orig[j] * (1 - lam)``, ``j = B - 1 - i``, in
        place (the same float32 products and sum, two temporaries fewer)."""
        last = len(x) - 1
        for k, w in zip(i.tolist(), lam, strict=True):
            x[k].mul_(w).add_(x_orig[last - k] * (1 - w))

    def _mix_elem(self, x: torch.Tensor) -> torch.Tensor:
        lam_batch, use_cutmix = self._params_per_elem(len(x))
        x_orig = x.clone()
        mixed = lam_batch != 1.0
        blend = np.flatnonzero(mixed & ~use_cutmix)
        self._blend(x, x_orig, blend, lam_batch[blend])
        for i in np.flatnonzero(mixed & use_cutmix):  # boxes drawn in timm's order
            j = len(x) - i - 1
            (yl, yh, xl, xh), lam_batch[i] = self._box(x[i].shape, lam_batch[i])
            x[i][:, yl:yh, xl:xh] = x_orig[j][:, yl:yh, xl:xh]
        return torch.tensor(lam_batch, device=x.device, dtype=x.dtype).unsqueeze(1)

    def _mix_pair(self, x: torch.Tensor) -> torch.Tensor:
        lam_batch, use_cutmix = self._params_per_elem(len(x) // 2)
        x_orig = x.clone()
        mixed = lam_batch != 1.0
        blend = np.flatnonzero(mixed & ~use_cutmix)
        self._blend(x, x_orig, blend, lam_batch[blend])
        self._blend(x, x_orig, len(x) - 1 - blend, lam_batch[blend])
        for i in np.flatnonzero(mixed & use_cutmix):
            j = len(x) - i - 1
            (yl, yh, xl, xh), lam_batch[i] = self._box(x[i].shape, lam_batch[i])
            x[i][:, yl:yh, xl:xh] = x_orig[j][:, yl:yh, xl:xh]
            x[j][:, yl:yh, xl:xh] = x_orig[i][:, yl:yh, xl:xh]
        lam_batch = np.concatenate((lam_batch, lam_batch[::-1]))
        return torch.tensor(lam_batch, device=x.device, dtype=x.dtype).unsqueeze(1)

    def _mix_batch(self, x: torch.Tensor) -> float:
        lam, use_cutmix = self._params_per_batch()
        if lam == 1.0:
            return 1.0
        if use_cutmix:
            (yl, yh, xl, xh), lam = self._box(x.shape, lam)
            x[:, :, yl:yh, xl:xh] = x.flip(0)[:, :, yl:yh, xl:xh]
        else:
            x_flipped = x.flip(0).mul_(1.0 - lam)
            x.mul_(lam).add_(x_flipped)
        return lam
