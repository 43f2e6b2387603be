"""Binary cross-entropy from probabilities, safe at exactly 0 and 1, with a bounded gradient."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from losslab._autograd.bce_probs import bce_probs
from losslab._checks import check_float, check_pointwise, check_range, check_reduction
from losslab._reduce import output_dtype, reduce, upcast
from losslab._registry import register
from losslab.losses.base import Loss
from losslab.losses.classification.bce import _check_binary_ignore_index, _check_label_smoothing

__all__ = ["BCEProbsLoss", "bce_probs_loss"]


def _check_options(
    fn: str, eps: float, label_smoothing: float, ignore_index: Optional[int]
) -> tuple[float, float, Optional[int]]:
    """Hyperparameter checks, shared by the function and the module's constructor."""
    return (
        check_float(fn, "eps", eps, low=0.0, high=0.5, low_open=True, high_open=True),
        _check_label_smoothing(fn, label_smoothing),
        _check_binary_ignore_index(fn, ignore_index),
    )


def bce_probs_loss(
    probs: Tensor,
    target: Tensor,
    *,
    eps: float = 1e-6,
    label_smoothing: float = 0.0,
    ignore_index: Optional[int] = None,
    sample_weight: Optional[Tensor] = None,
    validate: bool = True,
    reduction: str = "mean",
) -> Tensor:
    r"""Binary cross-entropy from probabilities, for callers that have no logits.

    .. math::

        \ell_i = -\bigl(y'_i \log \max(p_i, \epsilon)
                 + (1 - y'_i) \log \max(1 - p_i, \epsilon)\bigr),
        \qquad y' = y (1 - \varepsilon_{ls}) + \varepsilon_{ls} / 2

    Prefer :func:`bce_with_logits_loss` when logits exist: it is exact everywhere.

    The backward is analytic (``losslab._autograd.bce_probs``):
    :math:`\partial \ell / \partial p = (p - y') / \max(p (1 - p), \epsilon (1 - \epsilon))`,
    the exact gradient inside :math:`[\epsilon, 1 - \epsilon]` and, outside, a gradient
    bounded by :math:`1 / (\epsilon (1 - \epsilon))` that keeps pushing a saturated wrong
    prediction back (a plain clamp gives 0 at :math:`p = 0, y = 1`; torch's ``-100`` log
    clamp gives :math:`10^{12}`). It saves only its inputs.

    Why ``eps = 1e-6``: it caps the per-element loss at :math:`-\log 10^{-6} \approx 13.8`
    and the gradient at about :math:`10^6`, and both ``1e-6`` and ``1 - 1e-6`` are distinct
    from 0 and 1 in float32 (the spacing of float32 below 1 is 6e-8), so the clamp is exact
    where the computation happens. It lies below fp16's smallest normal number (6e-5), which
    is harmless because half inputs are computed in float32 (the loss is returned in the
    input's dtype, or float32 under autocast). It runs under ``torch.autocast``, where
    ``torch.nn.functional.binary_cross_entropy`` raises on CUDA ("unsafe to autocast").

    Args:
        probs: probabilities in [0, 1], any shape (N, ...), floating point.
        target: floating point, the shape of ``probs``, values in [0, 1].
        eps: clamp floor of the probabilities inside the logs, in (0, 0.5).
        label_smoothing: in [0, 1); targets move towards 1/2 (Keras' convention).
        ignore_index: positions whose target equals it are masked (excluded from the target
            check and from the mean's count); must lie outside [0, 1].
        sample_weight: (N,) non-negative weights along dim 0.
        validate: check probabilities and targets (one host sync).
        reduction: ``"mean" | "sum" | "none"``; ``none`` returns ``probs``' shape.

    >>> import torch
    >>> probs = torch.tensor([0.9, 0.2, 0.0, 1.0], requires_grad=True)
    >>> target = torch.tensor([1.0, 0.0, 1.0, 1.0])
    >>> loss = bce_probs_loss(probs, target, reduction="sum")
    >>> loss
    tensor(14.1440, grad_fn=<SumBackward0>)
    >>> loss.backward()
    >>> probs.grad  # p = 0 with y = 1 still learns; p = 1 with y = 1 is at rest
    tensor([-1.1111e+00,  1.2500e+00, -1.0000e+06,  0.0000e+00])
    """
    fn = "bce_probs_loss"
    check_pointwise(
        fn,
        "probs",
        probs,
        target,
        reduction=reduction,
        sample_weight=sample_weight,
        validate=validate,
    )
    eps, label_smoothing, ignore_index = _check_options(fn, eps, label_smoothing, ignore_index)
    valid = None if ignore_index is None else target != ignore_index
    check_range(fn, "probs", probs, low=0.0, high=1.0, validate=validate)
    check_range(fn, "target", target, low=0.0, high=1.0, validate=validate, mask=valid)

    y = upcast(target)
    if valid is not None:
        # Ignored labels (255, -1) never enter the arithmetic, so their gradient is finite.
        y = torch.where(valid, y, torch.zeros_like(y))
    if label_smoothing:
        y = y * (1.0 - label_smoothing) + 0.5 * label_smoothing
    loss = bce_probs(probs, y, eps)
    return reduce(
        loss, reduction, sample_weight=sample_weight, mask=valid, out_dtype=output_dtype(probs)
    )


@register
class BCEProbsLoss(Loss):
    """Binary cross-entropy from probabilities, safe at exactly 0 and 1, with a bounded gradient."""

    key = "bce_probs"
    family = "classification"
    input_kind = "probs"
    pointwise = True
    function = staticmethod(bce_probs_loss)

    def __init__(
        self,
        *,
        eps: float = 1e-6,
        label_smoothing: float = 0.0,
        ignore_index: Optional[int] = None,
        validate: bool = True,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        eps, label_smoothing, ignore_index = _check_options(
            "BCEProbsLoss", eps, label_smoothing, ignore_index
        )
        check_reduction("BCEProbsLoss", reduction)
        self._store(
            eps=eps,
            label_smoothing=label_smoothing,
            ignore_index=ignore_index,
            validate=validate,
            reduction=reduction,
        )
