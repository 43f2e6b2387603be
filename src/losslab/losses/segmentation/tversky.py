"""Tversky loss: alpha weights false positives, beta false negatives."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

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

__all__ = ["TverskyLoss", "tversky_loss"]


def _check_options(fn: str, alpha: float, beta: float) -> tuple[float, ...]:
    """Hyperparameter checks of this loss, shared by the function and the module."""
    return (check_float(fn, "alpha", alpha, low=0.0), check_float(fn, "beta", beta, low=0.0))


def tversky_loss(
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
    alpha: float = 0.5,
    beta: float = 0.5,
    sample_weight: Optional[Tensor] = None,
    validate: bool = True,
    reduction: str = "mean",
) -> Tensor:
    r"""Tversky loss: alpha weights false positives, beta false negatives.

    .. math::

        T_c = \frac{TP_c + s}{TP_c + \alpha\, FP_c + \beta\, FN_c + s}, \qquad
        \ell = \frac{\sum_c w_c (1 - T_c)}{\sum_c w_c}

    ``alpha`` weights the **false positives**, ``beta`` the **false negatives**: raise
    ``beta`` to favour recall on small structures.

    Args:
        logits: (B, C, *spatial) with 1-3 spatial dims; an activation is applied inside.
        target: class ids (B, *spatial) or a dense mask of ``logits``' shape (see ``mode``).
        mode, activation, class_weight, ignore_index, classes, include_background,
            aggregate, smooth, eps, empty, sync: as in
            :func:`~losslab.losses.segmentation.dice.dice_loss`.
        alpha: weight of the false positives (>= 0).
        beta: weight of the false negatives (>= 0). ``alpha = beta = 0.5`` is Dice,
            ``1, 1`` is Jaccard, exactly so with ``smooth=0`` (the smoothing term is added
            to TP + alpha FP + beta FN, not to Dice's 2 TP + FP + FN: with ``smooth > 0``
            the values differ slightly). (Some code, e.g. Jadon's, swaps the two names: here
            ``alpha`` always weights FP, as in SMP, MONAI and kornia.)
        sample_weight: (B,) image weights.
        validate: check target values (one host sync).
        reduction: ``"mean" | "sum" | "none"`` over images; ``none`` gives (B,) for
            ``aggregate="image"`` and a 0-d tensor for ``"batch"``.

    Reference: Salehi et al., "Tversky loss function for image segmentation using 3D fully
    convolutional deep networks", MLMI 2017.

    >>> import torch
    >>> logits = torch.tensor([[[[3.0, -3.0], [2.0, -1.0]]]])
    >>> target = torch.tensor([[[[1.0, 0.0], [1.0, 1.0]]]])
    >>> tversky_loss(logits, target, alpha=0.3, beta=0.7)
    tensor(0.1716)
    """
    fn = "tversky_loss"
    alpha, beta = _check_options(fn, alpha, beta)
    smooth_f, eps_f = float(smooth), float(eps)

    def per_class(st: Stats) -> Tensor:
        return 1.0 - ratio(st.tp, st.tp + alpha * st.fp + beta * st.fn, smooth=smooth_f, eps=eps_f)

    return overlap_loss(
        fn,
        logits,
        target,
        per_class,
        **common(locals(), *PER_CALL),
    )


@register
class TverskyLoss(OverlapLoss):
    """Tversky loss: alpha weights false positives, beta false negatives."""

    key = "tversky"
    function = staticmethod(tversky_loss)

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
        alpha: float = 0.5,
        beta: float = 0.5,
        validate: bool = True,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        opts = check_options("TverskyLoss", **common(locals(), "reduction"))
        _check_options("TverskyLoss", alpha, beta)
        self._store(**opts, alpha=alpha, beta=beta, validate=validate, reduction=reduction)
