"""Reductions and the precision policy shared by every loss.

``reduce(loss, reduction, sample_weight=..., weight=..., mask=...)``:

* ``"none"`` returns ``loss * weights`` with masked positions set to 0 (the shape of ``loss``);
* ``"sum"`` returns the sum of that;
* ``"mean"`` divides the sum by the *valid, weighted count*
  ``sum(sample_weight[n] * weight[n, ...] * mask[n, ...])``. When that count is 0 (an
  all-ignored batch, or all weights 0) the mean is 0 with zero gradient, never NaN.

Precision: losses compute in float32 (or float64) even for half inputs and return the
dtype torch's own losses return: the input's dtype, or float32 under autocast.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from losslab.distributed import sync_sum

__all__ = ["compute_dtype", "output_dtype", "reduce", "upcast"]

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def compute_dtype(x: Tensor) -> torch.dtype:
    """float32 for half inputs, the input dtype otherwise (float32/float64)."""
    return torch.float32 if x.dtype in _LOW_PRECISION else x.dtype


def upcast(x: Tensor) -> Tensor:
    """``x`` in its compute dtype (a no-op for float32/float64)."""
    return x.to(compute_dtype(x)) if x.dtype in _LOW_PRECISION else x


def output_dtype(x: Tensor) -> torch.dtype:
    """The dtype a loss over ``x`` returns, as torch's losses do.

    Half inputs outside autocast give a half loss; under autocast the loss is float32
    (torch runs its losses in float32 there).
    """
    if x.dtype in _LOW_PRECISION:
        device_type = x.device.type
        try:
            enabled = torch.is_autocast_enabled(device_type)
        except TypeError:  # torch < 2.4 has no device_type argument
            enabled = (
                torch.is_autocast_cpu_enabled()
                if device_type == "cpu"
                else torch.is_autocast_enabled()
            )
        return torch.float32 if enabled else x.dtype
    return x.dtype


def _along_dim0(w: Tensor, like: Tensor) -> Tensor:
    """View a per-sample weight (N,) so that it multiplies dim 0 of ``like``."""
    return w.reshape((w.shape[0],) + (1,) * (like.dim() - 1))


def reduce(
    loss: Tensor,
    reduction: str,
    *,
    sample_weight: Optional[Tensor] = None,
    weight: Optional[Tensor] = None,
    mask: Optional[Tensor] = None,
    out_dtype: Optional[torch.dtype] = None,
    sync: str = "local",
) -> Tensor:
    """Reduce an elementwise (or per-sample) ``loss``.

    Args:
        loss: computed loss, shape (N, ...).
        reduction: ``"none" | "mean" | "sum"`` (already validated by the caller).
        sample_weight: (N,) weights of the samples along dim 0.
        weight: per-element weights of exactly ``loss``'s shape (class weights gathered
            per position, for instance); they count in the mean's denominator.
        mask: boolean, ``loss``'s shape; ``False`` marks positions that do not count.
        out_dtype: dtype of the result (default: ``loss.dtype``).
        sync: ``"global"`` sums the total and the count over the processes (one collective)
            before dividing, so ``mean`` and ``sum`` are those of the global batch
            (:mod:`losslab.distributed`); ``none`` is never synchronized.

    >>> reduce(torch.tensor([1.0, 2.0, 3.0]), "mean", sample_weight=torch.tensor([1.0, 1.0, 2.0]))
    tensor(2.2500)
    >>> reduce(torch.tensor([1.0, 2.0]), "mean", mask=torch.tensor([False, False]))
    tensor(0.)
    """
    w: Optional[Tensor] = weight
    if sample_weight is not None:
        sw = _along_dim0(sample_weight.to(loss.dtype), loss)
        w = sw if w is None else w * sw
    if mask is not None:
        # torch.where, not a product: a non-finite loss at a masked position must not leak.
        loss = torch.where(mask, loss, loss.new_zeros(()))
        if w is not None:
            w = torch.where(mask, w, w.new_zeros(()))
    weighted = loss if w is None else loss * w
    out_dtype = out_dtype or loss.dtype

    if reduction == "none":
        return weighted.to(out_dtype)
    total = weighted.sum()
    if reduction == "sum":
        return sync_sum(total, sync).to(out_dtype)
    # "mean": divide by the valid, weighted count.
    if w is None and mask is None:
        if sync == "global":
            count = total.new_tensor(float(loss.numel()))
            total, count = sync_sum(torch.stack([total, count]), sync).unbind()
            return (total / count.clamp_min(1.0)).to(out_dtype)
        return (total / max(loss.numel(), 1)).to(out_dtype)
    if w is None:
        assert mask is not None
        count = mask.sum().to(total.dtype)
    else:
        count = torch.broadcast_to(w, loss.shape).sum()
    if sync == "global":
        total, count = sync_sum(torch.stack([total, count.to(total.dtype)]), sync).unbind()
    # A zero count means every contribution is zero: total / tiny == 0, gradient 0 * (1/tiny) == 0.
    return (total / count.clamp_min(torch.finfo(total.dtype).tiny)).to(out_dtype)
