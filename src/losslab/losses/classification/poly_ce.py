"""Poly-1 cross-entropy (PolyLoss): CE + epsilon * (1 - p_t), from logits and class ids."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from losslab._checks import check_class_ids, check_float, check_reduction
from losslab._reduce import compute_dtype, output_dtype
from losslab._registry import register
from losslab.losses.base import Loss
from losslab.losses.classification.cross_entropy import (
    ClassWeight,
    _class_id_terms,
    _reduce_class_ids,
    check_class_inputs,
)
from losslab.losses.classification.cross_entropy import _check_options as _ce_options

__all__ = ["PolyCrossEntropyLoss", "poly_cross_entropy_loss"]


def _check_options(
    fn: str,
    epsilon: float,
    class_weight: ClassWeight,
    ignore_index: Optional[int],
    label_smoothing: float,
    validate: bool,
    logits: Optional[Tensor] = None,
) -> tuple[float, Optional[Tensor], Optional[int], float]:
    """Hyperparameter checks, shared by the function and the module's constructor."""
    # epsilon >= -1 keeps the leading coefficient of the polynomial, 1 + epsilon, >= 0.
    epsilon = check_float(fn, "epsilon", epsilon, low=-1.0)
    return (
        epsilon,
        *_ce_options(fn, class_weight, ignore_index, label_smoothing, validate, logits),
    )


def poly_cross_entropy_loss(
    logits: Tensor,
    target: Tensor,
    *,
    epsilon: float = 1.0,
    class_weight: ClassWeight = None,
    ignore_index: Optional[int] = None,
    label_smoothing: float = 0.0,
    sample_weight: Optional[Tensor] = None,
    validate: bool = True,
    reduction: str = "mean",
) -> Tensor:
    r"""Poly-1 cross-entropy: cross-entropy plus :math:`\epsilon (1 - p_t)`.

    .. math::

        \ell_i = \mathrm{CE}_i + \epsilon\, w_{y_i} (1 - p_{t,i}),
        \qquad p_t = \sum_c t_c p_c = (1 - \varepsilon) p_{y} + \varepsilon / C

    where :math:`t` is the (label-smoothed) target distribution and :math:`\mathrm{CE}_i`
    is :func:`cross_entropy_loss`'s per-position term. Class weights follow
    ``cross_entropy_loss``: :math:`w_{y_i}` multiplies the whole per-position term
    (without label smoothing; with it, the smoothing part of CE is weighted per class
    :math:`c` as in torch), and ``mean`` divides by :math:`\sum_i s_i w_{y_i}` over
    non-ignored positions. So ``epsilon=0`` is exactly ``cross_entropy_loss``.

    :math:`1 - p_t` is computed as :math:`(1 - \varepsilon)(-\mathrm{expm1}(-\mathrm{nll}))
    + \varepsilon (1 - 1/C)` from :math:`\mathrm{nll} = -\log p_y`, so it is as accurate
    as the cross-entropy itself when :math:`p_y \to 1` (``1 - exp(-nll)`` would cancel).

    Args:
        logits: (N, C) or (N, C, d1, ...), floating point, classes along dim 1.
        target: class ids (N, d1, ...), integer dtype.
        epsilon: coefficient of the first polynomial term, >= -1 (the paper's range, so
            that the leading coefficient :math:`1 + \epsilon` stays >= 0); the paper's
            ImageNet setting is 2.
        class_weight: (C,) non-negative weights, a tensor or a sequence.
        ignore_index: positions equal to it are masked (any int; 255 works).
        label_smoothing: in [0, 1).
        sample_weight: (N,) non-negative weights along dim 0.
        validate: check class ids (one host sync).
        reduction: ``"mean" | "sum" | "none"``; ``none`` returns (N, d1, ...).

    Reference: Leng et al., "PolyLoss: A Polynomial Expansion Perspective of
    Classification Loss Functions", ICLR 2022.

    >>> import torch
    >>> logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 0.0]])
    >>> poly_cross_entropy_loss(logits, torch.tensor([0, 2]))
    tensor(1.3976)
    >>> poly_cross_entropy_loss(logits, torch.tensor([0, 2]), epsilon=0.0)  # plain CE
    tensor(0.8964)
    """
    fn = "poly_cross_entropy_loss"
    check_class_inputs(
        fn,
        logits,
        target,
        soft_allowed=False,
        reduction=reduction,
        sample_weight=sample_weight,
        validate=validate,
    )
    epsilon, class_weight, ignore_index, label_smoothing = _check_options(
        fn, epsilon, class_weight, ignore_index, label_smoothing, validate, logits
    )
    num_classes = logits.shape[1]
    check_class_ids(fn, "target", target, num_classes, ignore_index=ignore_index, validate=validate)
    x = logits.to(compute_dtype(logits))
    w = None if class_weight is None else class_weight.to(x.dtype)
    loss, nll, w_y, valid = _class_id_terms(
        x, target, ignore_index=ignore_index, w=w, label_smoothing=label_smoothing
    )
    if epsilon:
        # 1 - p_y = -expm1(-nll): as accurate as nll when p_y is close to 1 (1 - exp(-nll) cancels).
        one_minus_pt = (1.0 - label_smoothing) * -torch.expm1(-nll)
        if label_smoothing:
            one_minus_pt = one_minus_pt + label_smoothing * (1.0 - 1.0 / num_classes)
        poly = epsilon * one_minus_pt
        loss = loss + (poly if w_y is None else poly * w_y)
    return _reduce_class_ids(
        loss,
        reduction,
        w_y=w_y,
        sample_weight=sample_weight,
        valid=valid,
        out_dtype=output_dtype(logits),
    )


@register
class PolyCrossEntropyLoss(Loss):
    """Poly-1 cross-entropy (PolyLoss): CE + epsilon * (1 - p_t), from logits and class ids."""

    key = "poly_ce"
    family = "classification"
    input_kind = "logits"
    pointwise = True
    function = staticmethod(poly_cross_entropy_loss)

    def __init__(
        self,
        *,
        epsilon: float = 1.0,
        class_weight: ClassWeight = None,
        ignore_index: Optional[int] = None,
        label_smoothing: float = 0.0,
        validate: bool = True,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        epsilon, class_weight, ignore_index, label_smoothing = _check_options(
            "PolyCrossEntropyLoss", epsilon, class_weight, ignore_index, label_smoothing, validate
        )
        check_reduction("PolyCrossEntropyLoss", reduction)
        self._store(
            epsilon=epsilon,
            class_weight=class_weight,
            ignore_index=ignore_index,
            label_smoothing=label_smoothing,
            validate=validate,
            reduction=reduction,
        )
