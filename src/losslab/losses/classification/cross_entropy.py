"""Softmax cross-entropy with class ids or soft targets, class weights, ignore_index and label smoothing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional, Union

import torch
from torch import Tensor

from losslab._checks import (
    as_class_weight,
    check_class_ids,
    check_float,
    check_ignore_index,
    check_range,
    check_reduction,
)
from losslab._reduce import compute_dtype, output_dtype, reduce
from losslab._registry import register
from losslab.losses.base import Loss
from losslab.losses.classification._common import along_classes, check_class_inputs

__all__ = ["CrossEntropyLoss", "cross_entropy_loss"]

ClassWeight = Union[Tensor, Sequence[float], None]


def _check_options(
    fn: str,
    class_weight: ClassWeight,
    ignore_index: Optional[int],
    label_smoothing: float,
    validate: bool,
    logits: Optional[Tensor] = None,
) -> tuple[Optional[Tensor], Optional[int], float]:
    """Hyperparameter checks, shared by the function and the module's constructor.

    With ``logits`` (in the function) ``class_weight`` must also have length C and live on
    ``logits``' device.
    """
    num_classes = None if logits is None else logits.shape[1]
    return (
        as_class_weight(fn, "class_weight", class_weight, num_classes, logits, validate=validate),
        check_ignore_index(fn, ignore_index),
        check_float(fn, "label_smoothing", label_smoothing, low=0.0, high=1.0, high_open=True),
    )


def _lse(x: Tensor) -> Tensor:
    # logsumexp saves only its input (already alive) and its (N, d1, ...) result: no
    # log-probability tensor is kept for backward.
    return torch.logsumexp(x, dim=1)


def _smoothing_sum(x: Tensor, lse: Tensor, w: Optional[Tensor]) -> Tensor:
    """sum_c w_c (lse - x_c) = -sum_c w_c log p_c, without keeping log-probabilities.

    Each term lse - x_c is >= 0, so the sum has no cancellation (W * lse - sum_c w_c x_c
    would lose digits when every logit is large). The (N, C, ...) difference is a
    temporary: nothing of that size is saved for backward.
    """
    diff = lse.unsqueeze(1) - x
    if w is not None:
        diff = diff * along_classes(w, x)
    return diff.sum(1)


def _class_id_terms(
    x: Tensor,
    target: Tensor,
    *,
    ignore_index: Optional[int],
    w: Optional[Tensor],
    label_smoothing: float,
) -> tuple[Tensor, Tensor, Optional[Tensor], Optional[Tensor]]:
    """(per-position CE, nll = -log p_y, w[y] or None, valid mask or None) for class ids."""
    valid = None if ignore_index is None else target != ignore_index
    # Masked BEFORE the gather: an ignored label such as 255 is never used as an index.
    ids = target if valid is None else torch.where(valid, target, torch.zeros_like(target))
    ids = ids.long()
    lse = _lse(x)
    nll = lse - x.gather(1, ids.unsqueeze(1)).squeeze(1)
    w_y = None if w is None else w[ids]
    loss = nll if w_y is None else nll * w_y
    if label_smoothing:
        num_classes = x.shape[1]
        loss = (1.0 - label_smoothing) * loss + (label_smoothing / num_classes) * _smoothing_sum(
            x, lse, w
        )
    return loss, nll, w_y, valid


def _reduce_class_ids(
    loss: Tensor,
    reduction: str,
    *,
    w_y: Optional[Tensor],
    sample_weight: Optional[Tensor],
    valid: Optional[Tensor],
    out_dtype: torch.dtype,
) -> Tensor:
    """Reduce a per-position loss that already carries its class weight.

    ``mean`` divides by sum(sample_weight * w[y]) over non-ignored positions (torch's
    convention); an all-ignored batch gives 0 with zero gradient.
    """
    if w_y is None or reduction != "mean":
        return reduce(loss, reduction, sample_weight=sample_weight, mask=valid, out_dtype=out_dtype)
    total = reduce(loss, "sum", sample_weight=sample_weight, mask=valid)
    count = reduce(w_y.detach(), "sum", sample_weight=sample_weight, mask=valid)
    # The clamp keeps the unselected branch finite so that its zero gradient stays zero.
    mean = torch.where(
        count > 0, total / count.clamp_min(torch.finfo(total.dtype).tiny), total * 0.0
    )
    return mean.to(out_dtype)


def cross_entropy_loss(
    logits: Tensor,
    target: Tensor,
    *,
    class_weight: ClassWeight = None,
    ignore_index: Optional[int] = None,
    label_smoothing: float = 0.0,
    sample_weight: Optional[Tensor] = None,
    validate: bool = True,
    reduction: str = "mean",
) -> Tensor:
    r"""Softmax cross-entropy: torch's ``cross_entropy`` semantics, without its traps.

    For class ids :math:`y` (with :math:`\log p_c = x_c - \log\sum_k e^{x_k}`,
    :math:`\varepsilon` the label smoothing, :math:`C` classes):

    .. math::

        \ell_i = (1 - \varepsilon)\, w_{y_i} (-\log p_{y_i})
                 + \frac{\varepsilon}{C} \sum_c w_c (-\log p_c)

    and ``mean`` is :math:`\sum_i s_i \ell_i / \sum_i s_i w_{y_i}` over non-ignored
    positions (:math:`s` the sample weights), exactly torch's convention. For soft
    targets :math:`t` (floating, ``logits``' shape), with :math:`t' = t (1 - \varepsilon) + \varepsilon / C`:

    .. math:: \ell_i = -\sum_c w_c\, t'_{ic} \log p_{ic}

    and ``mean`` divides by the (sample-weighted) number of positions, not by the class
    weights, as torch does.

    Differences from torch: ``ignore_index`` defaults to ``None`` (nothing ignored) and may
    be any int (255 works: ignored labels are masked before any gather); class ids outside
    [0, C) that are not ``ignore_index`` raise ``ValueError``; an all-ignored batch gives a
    mean of 0 with zero gradient (torch returns NaN); a single class (C = 1, loss always 0)
    is refused; ``sample_weight`` exists. ``ignore_index`` does not apply to soft targets
    (as in torch). Memory: only ``logsumexp`` and a gather are kept for backward, never a
    log-softmax or a one-hot tensor.

    Args:
        logits: (N, C) or (N, C, d1, ...), floating point, classes along dim 1.
        target: class ids (N, d1, ...) of an integer dtype (not bool or float), or soft
            probabilities of ``logits``' exact shape (floating, values in [0, 1]).
        class_weight: (C,) non-negative weights, a tensor or a sequence.
        ignore_index: class-id positions equal to it are masked.
        label_smoothing: in [0, 1), mixes the target with the uniform distribution.
        sample_weight: (N,) non-negative weights along dim 0; they count in the mean's
            denominator.
        validate: check class ids / soft target values (one host sync).
        reduction: ``"mean" | "sum" | "none"``; ``none`` returns (N, d1, ...).

    >>> import torch
    >>> logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 0.0], [1.0, 1.0, 3.0]])
    >>> cross_entropy_loss(logits, torch.tensor([0, 2, 255]), ignore_index=255)
    tensor(0.8964)
    >>> cross_entropy_loss(logits, torch.tensor([0, 2, 1]), class_weight=[1.0, 2.0, 0.5], label_smoothing=0.1)
    tensor(1.5620)
    """
    fn = "cross_entropy_loss"
    soft = check_class_inputs(
        fn,
        logits,
        target,
        soft_allowed=True,
        reduction=reduction,
        sample_weight=sample_weight,
        validate=validate,
    )
    class_weight, ignore_index, label_smoothing = _check_options(
        fn, class_weight, ignore_index, label_smoothing, validate, logits
    )
    num_classes = logits.shape[1]
    out_dtype = output_dtype(logits)
    if soft:
        check_range(fn, "target", target, low=0.0, high=1.0, validate=validate)
        dtype = torch.promote_types(compute_dtype(logits), compute_dtype(target))
        x = logits.to(dtype)
        w = None if class_weight is None else class_weight.to(x.dtype)
        t = target.to(dtype)
        if label_smoothing:
            t = t * (1.0 - label_smoothing) + label_smoothing / num_classes
        if w is not None:
            t = t * along_classes(w, x)
        # sum_c t_c (lse - x_c): every term >= 0; the product is a temporary, not saved.
        loss = ((_lse(x).unsqueeze(1) - x) * t).sum(1)
        return reduce(loss, reduction, sample_weight=sample_weight, out_dtype=out_dtype)

    check_class_ids(fn, "target", target, num_classes, ignore_index=ignore_index, validate=validate)
    x = logits.to(compute_dtype(logits))
    w = None if class_weight is None else class_weight.to(x.dtype)
    loss, _, w_y, valid = _class_id_terms(
        x, target, ignore_index=ignore_index, w=w, label_smoothing=label_smoothing
    )
    return _reduce_class_ids(
        loss, reduction, w_y=w_y, sample_weight=sample_weight, valid=valid, out_dtype=out_dtype
    )


@register
class CrossEntropyLoss(Loss):
    """Softmax cross-entropy with class ids or soft targets, class weights, ignore_index and label smoothing."""

    key = "ce"
    aliases = ("cross_entropy",)
    family = "classification"
    input_kind = "logits"
    pointwise = True
    function = staticmethod(cross_entropy_loss)

    def __init__(
        self,
        *,
        class_weight: ClassWeight = None,
        ignore_index: Optional[int] = None,
        label_smoothing: float = 0.0,
        validate: bool = True,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        class_weight, ignore_index, label_smoothing = _check_options(
            "CrossEntropyLoss", class_weight, ignore_index, label_smoothing, validate
        )
        check_reduction("CrossEntropyLoss", reduction)
        self._store(
            class_weight=class_weight,
            ignore_index=ignore_index,
            label_smoothing=label_smoothing,
            validate=validate,
            reduction=reduction,
        )
