"""Sigmoid focal loss (RetinaNet), from logits, with an analytic backward pass."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional, Union, cast

import torch
from torch import Tensor

from losslab._autograd.sigmoid_focal import sigmoid_focal_elementwise
from losslab._checks import (
    as_class_weight,
    check_choice,
    check_float,
    check_ignore_index,
    check_pointwise,
    check_range,
    check_reduction,
    fail,
)
from losslab._reduce import compute_dtype, output_dtype, reduce, upcast
from losslab._registry import register
from losslab.losses.base import Loss
from losslab.losses.classification._common import along_classes

__all__ = ["SigmoidFocalLoss", "sigmoid_focal_loss"]

PerClass = Union[Tensor, Sequence[float]]


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _as_tensor(value: Any, dtype: torch.dtype, device: Optional[torch.device] = None) -> Any:
    """A sequence of numbers as a tensor of ``dtype`` (no float32 round trip); anything else as is."""
    if isinstance(value, (list, tuple)) and all(_is_scalar(v) for v in value):
        return torch.tensor([float(v) for v in value], dtype=dtype, device=device)
    return value


def per_class_view(
    fn: str,
    name: str,
    value: PerClass,
    logits: Tensor,
    *,
    high: Optional[float] = None,
    validate: bool = True,
) -> Tensor:
    """A per-class hyperparameter as a (C,) tensor checked against dim 1 of ``logits``, viewed
    as (1, C, 1, ...) in the compute dtype so that it multiplies dim 1 (never the last dim)."""
    if logits.dim() < 2:
        fail(
            fn,
            name,
            f"be a number or None for {logits.dim()}-D `logits` (a per-class `{name}` aligns with dim 1)",
            value,
        )
    dtype = compute_dtype(logits)
    weight = as_class_weight(
        fn,
        name,
        _as_tensor(value, dtype, logits.device),
        logits.shape[1],
        logits,
        validate=validate,
    )
    weight = cast(Tensor, weight)
    if high is not None:
        check_range(fn, name, weight, low=0.0, high=high, validate=validate)
    return along_classes(weight.to(dtype), logits)


def check_alpha(
    fn: str,
    alpha: Any,
    logits: Optional[Tensor],
    *,
    high: Optional[float],
    positive: bool = False,
    validate: bool = True,
) -> Union[float, Tensor, None]:
    """``alpha``: None, a number in [0, high] ((0, high] with ``positive``), or a per-class
    (C,) tensor/sequence in [0, high].

    Returns None, the number, or the per-class view from :func:`per_class_view`. Without
    ``logits`` (a module's constructor, where C is unknown) a per-class alpha is only checked
    and None is returned.
    """
    if alpha is None:
        return None
    if _is_scalar(alpha):
        return check_float(fn, "alpha", alpha, low=0.0, high=high, low_open=positive)
    if logits is not None:
        return per_class_view(fn, "alpha", alpha, logits, high=high, validate=validate)
    weight = as_class_weight(fn, "alpha", _as_tensor(alpha, torch.float64), None, validate=validate)
    if high is not None:
        check_range(fn, "alpha", cast(Tensor, weight), low=0.0, high=high, validate=validate)
    return None


def _check_options(
    fn: str, alpha: Any, gamma: float, *, logits: Optional[Tensor] = None, validate: bool = True
) -> tuple[Union[float, Tensor, None], float]:
    """Hyperparameter checks, shared by the function and the module's constructor.

    Returns ``(alpha, gamma)`` with alpha as :func:`check_alpha` returns it.
    """
    return (
        check_alpha(fn, alpha, logits, high=1.0, validate=validate),
        check_float(fn, "gamma", gamma, low=0.0),
    )


def sigmoid_focal_terms(
    fn: str,
    logits: Tensor,
    target: Tensor,
    *,
    alpha: Union[float, PerClass, None],
    gamma: float,
    epsilon: float,
    ignore_index: Optional[int],
    sample_weight: Optional[Tensor],
    validate: bool,
    reduction: str,
) -> tuple[Tensor, Optional[Tensor], Tensor]:
    """Checks, then the elementwise (Poly-1) sigmoid focal loss.

    Returns ``(loss, mask, y)``: the loss in the compute dtype, the boolean mask of valid
    positions (None without ``ignore_index``) and the target with ignored positions set to 0.
    """
    check_pointwise(
        fn,
        "logits",
        logits,
        target,
        reduction=reduction,
        sample_weight=sample_weight,
        validate=validate,
    )
    alpha_arg, gamma = _check_options(fn, alpha, gamma, logits=logits, validate=validate)
    ignore_index = check_ignore_index(fn, ignore_index)
    x, y = upcast(logits), upcast(target).to(compute_dtype(logits))
    mask = None
    if ignore_index is not None:
        mask = target != ignore_index
        # Ignored positions hold labels such as 255: zero them so that neither the loss nor its
        # gradient there is NaN (the reduction masks them, but 0 * NaN would leak).
        y = torch.where(mask, y, torch.zeros((), dtype=y.dtype, device=y.device))
    check_range(fn, "target", target, low=0.0, high=1.0, validate=validate, mask=mask)
    loss = sigmoid_focal_elementwise(x, y, alpha_arg, gamma, epsilon)
    return loss, mask, y


def sigmoid_focal_loss(
    logits: Tensor,
    target: Tensor,
    *,
    alpha: Union[float, PerClass, None] = 0.25,
    gamma: float = 2.0,
    ignore_index: Optional[int] = None,
    normalize: bool = False,
    sample_weight: Optional[Tensor] = None,
    validate: bool = True,
    reduction: str = "mean",
) -> Tensor:
    r"""Sigmoid focal loss (torchvision's definition), from logits, soft targets allowed.

    .. math::

        p = \sigma(x), \quad p_t = p\,y + (1 - p)(1 - y), \quad
        \alpha_t = \alpha\,y + (1 - \alpha)(1 - y),

        \ell = \alpha_t\,(1 - p_t)^\gamma\,
            \mathrm{BCE}(x, y), \qquad \mathrm{BCE}(x, y) = -y \log p - (1 - y)\log(1 - p).

    Soft targets: :math:`p_t` is the linear interpolation above, torchvision's
    ``p_t = p * targets + (1 - p) * (1 - targets)``, so the modulating factor's base is
    :math:`1 - p_t = y\,\sigma(-x) + (1 - y)\,\sigma(x)` (it is not 0 at :math:`p = y`, e.g.
    :math:`2p(1 - p)` there). Implementations that take :math:`p_t = e^{-\mathrm{BCE}}` agree
    for hard targets only: for soft ones that is :math:`p^y (1 - p)^{1 - y}`, a weighted
    geometric mean, never above the linear :math:`p_t`, so their :math:`(1 - p_t)^\gamma` is
    larger (and costs one more exponential).

    The backward pass is analytic (``losslab._autograd.sigmoid_focal``): it recomputes what it
    needs from the inputs and stays finite at saturated logits for every :math:`\gamma \ge 0`,
    including :math:`\gamma < 1`, where autograd of the formula gives NaN (kornia #918). Double
    backward is not supported.

    Args:
        logits: (N, ...) or (N, C, ...) floating point; classes, if any, along dim 1.
        target: ``logits``' shape, floating point, values in [0, 1] (soft targets allowed).
        alpha: ``None`` (no weighting), a number in [0, 1], or a per-class (C,) tensor or
            sequence in [0, 1] that multiplies dim 1 (refused for 1-D ``logits``).
        gamma: focusing exponent, >= 0 (0 gives alpha-weighted BCE).
        ignore_index: positions whose target equals it are masked: excluded from the value
            check, from the sum and from the mean's count.
        normalize: divide by the number of positive targets (the sum of ``target`` over valid
            positions, clamped to >= 1, no gradient) before the reduction: RetinaNet's
            normalization. Use it with ``reduction="sum"`` to get RetinaNet's loss.
        sample_weight: (N,) non-negative weights along dim 0.
        validate: check target values (one host sync).
        reduction: ``"mean" | "sum" | "none"``; ``none`` returns ``logits``' shape.

    Reference: Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017.

    >>> import torch
    >>> sigmoid_focal_loss(torch.tensor([2.0, -1.0, 0.0]), torch.tensor([1.0, 0.0, 1.0]))
    tensor(0.0203)
    """
    fn = "sigmoid_focal_loss"
    check_choice(fn, "normalize", normalize, (False, True))
    loss, mask, y = sigmoid_focal_terms(
        fn,
        logits,
        target,
        alpha=alpha,
        gamma=gamma,
        epsilon=0.0,
        ignore_index=ignore_index,
        sample_weight=sample_weight,
        validate=validate,
        reduction=reduction,
    )
    if normalize:
        # Ignored positions already hold 0 in `y`: this counts the valid positives only.
        loss = loss / y.sum().detach().clamp_min(1.0)
    return reduce(
        loss, reduction, sample_weight=sample_weight, mask=mask, out_dtype=output_dtype(logits)
    )


@register
class SigmoidFocalLoss(Loss):
    """Sigmoid focal loss (RetinaNet) from logits, soft targets, analytic backward."""

    key = "focal"
    aliases = ("sigmoid_focal",)
    family = "classification"
    input_kind = "logits"
    pointwise = True
    function = staticmethod(sigmoid_focal_loss)

    def __init__(
        self,
        *,
        alpha: Union[float, PerClass, None] = 0.25,
        gamma: float = 2.0,
        ignore_index: Optional[int] = None,
        normalize: bool = False,
        validate: bool = True,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        fn = "SigmoidFocalLoss"
        _check_options(fn, alpha, gamma, validate=validate)
        check_ignore_index(fn, ignore_index)
        check_choice(fn, "normalize", normalize, (False, True))
        check_reduction(fn, reduction)
        self._store(
            alpha=alpha,
            gamma=gamma,
            ignore_index=ignore_index,
            normalize=normalize,
            validate=validate,
            reduction=reduction,
        )
