"""Poly-1 focal loss (PolyLoss): sigmoid focal loss plus epsilon * (1 - p_t)^(gamma + 1)."""

from __future__ import annotations

from typing import Optional, Union

from torch import Tensor

from losslab._checks import check_float, check_ignore_index, check_reduction
from losslab._reduce import output_dtype, reduce
from losslab._registry import register
from losslab.losses.base import Loss
from losslab.losses.classification.focal import PerClass, sigmoid_focal_terms
from losslab.losses.classification.focal import _check_options as _check_focal

__all__ = ["PolyFocalLoss", "poly_focal_loss"]


def _check_epsilon(fn: str, epsilon: float) -> float:
    return check_float(fn, "epsilon", epsilon, low=-1.0)


def _check_options(
    fn: str, epsilon: float, alpha: object, gamma: float, validate: bool = True
) -> float:
    """Hyperparameter checks of the module's constructor: the focal ones plus epsilon (the
    function checks epsilon here and the rest in the shared focal path)."""
    _check_focal(fn, alpha, gamma, validate=validate)
    return _check_epsilon(fn, epsilon)


def poly_focal_loss(
    logits: Tensor,
    target: Tensor,
    *,
    epsilon: float = 1.0,
    alpha: Union[float, PerClass, None] = 0.25,
    gamma: float = 2.0,
    ignore_index: Optional[int] = None,
    sample_weight: Optional[Tensor] = None,
    validate: bool = True,
    reduction: str = "mean",
) -> Tensor:
    r"""Poly-1 focal loss: the sigmoid focal loss with its leading polynomial term reweighted.

    .. math::

        \ell = \alpha_t (1 - p_t)^\gamma\,\mathrm{BCE}(x, y)
            + \varepsilon\,(1 - p_t)^{\gamma + 1}

    with :math:`p = \sigma(x)`, :math:`p_t = p\,y + (1 - p)(1 - y)` and
    :math:`\alpha_t = \alpha\,y + (1 - \alpha)(1 - y)` (1 when ``alpha=None``).

    The Poly-1 term is not weighted by :math:`\alpha_t`, exactly as in the paper's
    Poly-1 focal code (``Poly1 = alpha_t * FL + epsilon * (1 - pt) ** (gamma + 1)``). ``epsilon=0`` gives :func:`sigmoid_focal_loss`. The backward pass is the
    analytic one of the focal loss, finite at saturated logits for every :math:`\gamma \ge 0`.

    Args:
        logits: (N, ...) or (N, C, ...) floating point; classes, if any, along dim 1.
        target: ``logits``' shape, floating point in [0, 1] (soft targets allowed).
        epsilon: coefficient of the added term, >= -1 (the paper uses -1 for detection and
            positive values for classification).
        alpha: ``None``, a number in [0, 1], or a per-class (C,) tensor or sequence in [0, 1]
            along dim 1 (refused for 1-D ``logits``).
        gamma: focusing exponent, >= 0.
        ignore_index: positions whose target equals it are masked out.
        sample_weight: (N,) non-negative weights along dim 0.
        validate: check target values (one host sync).
        reduction: ``"mean" | "sum" | "none"``; ``none`` returns ``logits``' shape.

    Reference: Leng et al., "PolyLoss: A Polynomial Expansion Perspective of Classification
    Loss Functions", ICLR 2022.

    >>> import torch
    >>> poly_focal_loss(torch.tensor([2.0, -1.0, 0.0]), torch.tensor([1.0, 0.0, 1.0]))
    tensor(0.0690)
    """
    fn = "poly_focal_loss"
    epsilon = _check_epsilon(fn, epsilon)
    loss, mask, _ = sigmoid_focal_terms(
        fn,
        logits,
        target,
        alpha=alpha,
        gamma=gamma,
        epsilon=epsilon,
        ignore_index=ignore_index,
        sample_weight=sample_weight,
        validate=validate,
        reduction=reduction,
    )
    return reduce(
        loss, reduction, sample_weight=sample_weight, mask=mask, out_dtype=output_dtype(logits)
    )


@register
class PolyFocalLoss(Loss):
    """Poly-1 focal loss (PolyLoss, sigmoid-based), from logits."""

    key = "poly_focal"
    family = "classification"
    input_kind = "logits"
    pointwise = True
    function = staticmethod(poly_focal_loss)

    def __init__(
        self,
        *,
        epsilon: float = 1.0,
        alpha: Union[float, PerClass, None] = 0.25,
        gamma: float = 2.0,
        ignore_index: Optional[int] = None,
        validate: bool = True,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        fn = "PolyFocalLoss"
        _check_options(fn, epsilon, alpha, gamma, validate=validate)
        check_ignore_index(fn, ignore_index)
        check_reduction(fn, reduction)
        self._store(
            epsilon=epsilon,
            alpha=alpha,
            gamma=gamma,
            ignore_index=ignore_index,
            validate=validate,
            reduction=reduction,
        )
