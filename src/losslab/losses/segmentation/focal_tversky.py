"""Focal Tversky loss: (1 - Tversky index) ** gamma per class."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import torch
from torch import Tensor

from losslab._checks import check_float
from losslab._registry import register
from losslab.losses.segmentation._family import (
    PER_CALL,
    ClassWeight,
    OverlapLoss,
    check_options,
    common,
    overlap_loss,
)
from losslab.losses.segmentation._overlap import Stats, ratio

__all__ = ["FocalTverskyLoss", "focal_tversky_loss"]


def _check_options(fn: str, alpha: float, beta: float, gamma: float) -> tuple[float, ...]:
    """Hyperparameter checks of this loss, shared by the function and the module."""
    return (
        check_float(fn, "alpha", alpha, low=0.0),
        check_float(fn, "beta", beta, low=0.0),
        check_float(fn, "gamma", gamma, low=0.0, low_open=True),
    )


def focal_tversky_loss(
    logits: Tensor,
    target: Tensor,
    *,
    mode: str = "binary",
    activation: Optional[str] = "auto",
    class_weight: ClassWeight = None,
    ignore_index: Optional[int] = None,
    classes: Optional[Sequence[int]] = None,
    include_background: bool = True,
    aggregate: str = "image",
    smooth: float = 1.0,
    eps: float = 1e-6,
    empty: str = "ratio",
    sync: str = "local",
    alpha: float = 0.3,
    beta: float = 0.7,
    gamma: float = 0.75,
    sample_weight: Optional[Tensor] = None,
    validate: bool = True,
    reduction: str = "mean",
) -> Tensor:
    r"""Focal Tversky loss: (1 - Tversky index) ** gamma per class.

    .. math::

        \ell = \frac{\sum_c w_c (1 - T_c)^{\gamma}}{\sum_c w_c}

    with :math:`T_c` the Tversky index (``alpha`` on false positives, ``beta`` on false
    negatives). For :math:`\gamma < 1` the derivative of :math:`(1 - T)^\gamma` is
    unbounded as :math:`T \to 1`; at exactly :math:`T = 1` the loss is 0 with gradient 0.

    Args:
        logits: (B, C, *spatial) with 1-3 spatial dims; an activation is applied inside.
        target: class ids (B, *spatial) or a dense mask of ``logits``' shape (see ``mode``).
        mode, activation, class_weight, ignore_index, classes, include_background,
            aggregate, smooth, eps, empty, sync: as in
            :func:`~losslab.losses.segmentation.dice.dice_loss`.
        alpha: weight of the false positives (>= 0).
        beta: weight of the false negatives (>= 0).
        gamma: exponent of the per-class loss (> 0); Abraham & Khan recommend 4/3 in their
            ``1/gamma`` form, i.e. ``gamma = 0.75`` here.
        sample_weight: (B,) image weights.
        validate: check target values (one host sync).
        reduction: ``"mean" | "sum" | "none"`` over images; ``none`` gives (B,) for
            ``aggregate="image"`` and a 0-d tensor for ``"batch"``.

    Reference: Abraham & Khan, "A Novel Focal Tversky Loss Function with Improved Attention U-Net for
    Lesion Segmentation", ISBI 2019.

    >>> import torch
    >>> logits = torch.tensor([[[[3.0, -3.0], [2.0, -1.0]]]])
    >>> target = torch.tensor([[[[1.0, 0.0], [1.0, 1.0]]]])
    >>> focal_tversky_loss(logits, target)
    tensor(0.2666)
    """
    fn = "focal_tversky_loss"
    alpha, beta, gamma = _check_options(fn, alpha, beta, gamma)
    smooth_f, eps_f = float(smooth), float(eps)

    def per_class(st: Stats) -> Tensor:
        index = ratio(st.tp, st.tp + alpha * st.fp + beta * st.fn, smooth=smooth_f, eps=eps_f)
        gap = 1.0 - index
        # (1 - T)^gamma through a double where: at a perfect score the value is exactly 0 and the
        # gradient 0 (the true derivative is unbounded for gamma < 1), never NaN.
        positive = gap > 0
        safe = torch.where(positive, gap, torch.ones_like(gap))
        return torch.where(positive, safe**gamma, torch.zeros_like(gap))

    return overlap_loss(
        fn,
        logits,
        target,
        per_class,
        **common(locals(), *PER_CALL),
    )


@register
class FocalTverskyLoss(OverlapLoss):
    """Focal Tversky loss: (1 - Tversky index) ** gamma per class."""

    key = "focal_tversky"
    function = staticmethod(focal_tversky_loss)

    def __init__(
        self,
        *,
        mode: str = "binary",
        activation: Optional[str] = "auto",
        class_weight: ClassWeight = None,
        ignore_index: Optional[int] = None,
        classes: Optional[Sequence[int]] = None,
        include_background: bool = True,
        aggregate: str = "image",
        smooth: float = 1.0,
        eps: float = 1e-6,
        empty: str = "ratio",
        sync: str = "local",
        alpha: float = 0.3,
        beta: float = 0.7,
        gamma: float = 0.75,
        validate: bool = True,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        opts = check_options("FocalTverskyLoss", **common(locals(), "reduction"))
        _check_options("FocalTverskyLoss", alpha, beta, gamma)
        self._store(
            **opts, alpha=alpha, beta=beta, gamma=gamma, validate=validate, reduction=reduction
        )
