"""Class-balanced loss (effective number of samples) over a CE, BCE or focal base loss."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from losslab._autograd.sigmoid_focal import sigmoid_focal_elementwise
from losslab._checks import (
    check_choice,
    check_float,
    check_reduction,
    fail,
    fmt,
    is_compiling,
    is_sequence,
)
from losslab._reduce import compute_dtype, output_dtype, reduce, upcast
from losslab._registry import register
from losslab.distributed import check_on_every_rank, check_sync, sync_sum
from losslab.losses.base import Loss
from losslab.losses.classification._common import check_class_target
from losslab.losses.classification.focal import _is_scalar

__all__ = ["ClassBalancedLoss", "class_balanced_loss"]

BASES = ("ce", "bce", "focal")
Counts = Union[Tensor, Sequence[float], str]


def _counts(
    fn: str, samples_per_class: Any, num_classes: Optional[int], *, validate: bool
) -> Optional[Tensor]:
    """``samples_per_class`` as a float64 (C,) tensor on its device (every count > 0), or
    None for ``"batch"`` (counted from each call's targets)."""
    name = "samples_per_class"
    if isinstance(samples_per_class, str):
        check_choice(fn, name, samples_per_class, ("batch",))
        return None
    if is_sequence(samples_per_class):
        if not all(_is_scalar(v) for v in samples_per_class):
            fail(
                fn, name, "be a tensor or a sequence of numbers", samples_per_class, kind=TypeError
            )
        counts = torch.tensor([float(v) for v in samples_per_class], dtype=torch.float64)
    elif isinstance(samples_per_class, Tensor):
        if samples_per_class.is_complex() or samples_per_class.dtype == torch.bool:
            fail(
                fn,
                name,
                "be a real-valued tensor of counts",
                f"dtype {fmt(samples_per_class.dtype)}",
                kind=TypeError,
                raw_got=True,
            )
        counts = samples_per_class.detach().to(torch.float64)
    else:
        fail(
            fn,
            name,
            'be a 1-D tensor, a sequence of counts or "batch"',
            type(samples_per_class).__name__,
            kind=TypeError,
            raw_got=True,
        )
    if (
        counts.dim() != 1
        or counts.numel() == 0
        or (num_classes is not None and counts.numel() != num_classes)
    ):
        expected = (
            f"have shape (C,) = ({num_classes},)"
            if num_classes is not None
            else "be 1-D and non-empty"
        )
        fail(fn, name, expected, tuple(counts.shape), raw_got=True)
    if validate and not is_compiling():
        bad = ~(counts > 0) | ~torch.isfinite(counts)  # catches NaN too
        if bool(bad.any()):
            fail(
                fn,
                name,
                "hold finite counts > 0",
                f"{int(bad.sum())} bad count(s), e.g. {counts[bad][0].item():g}",
                raw_got=True,
                hint=(
                    "A class with 0 samples has effective number (1 - beta^0) / (1 - beta) = 0 "
                    "and an infinite weight; drop the class or count it at least once."
                ),
            )
    return counts


def _check_options(
    fn: str,
    samples_per_class: Any,
    beta: float,
    base: str,
    gamma: float,
    sync: str,
    *,
    num_classes: Optional[int] = None,
    validate: bool = True,
) -> tuple[Optional[Tensor], float, str, float, str]:
    """Hyperparameter checks, shared by the function and the module's constructor."""
    return (
        _counts(fn, samples_per_class, num_classes, validate=validate),
        check_float(fn, "beta", beta, low=0.0, high=1.0, high_open=True),
        check_choice(fn, "base", base, BASES),
        check_float(fn, "gamma", gamma, low=0.0),
        check_sync(fn, sync),
    )


def _class_weights(counts: Tensor, beta: float) -> Tensor:
    """(1 - beta) / (1 - beta^n_c) over the classes with n_c > 0, normalized to mean 1 there.

    With every count > 0 (given counts) that is the paper's normalization (sum C). Batch
    counts may be 0: such a class has no sample to weight, gets weight 0 and is left out of
    the normalization (float64).
    """
    present = counts > 0
    if beta == 0.0:
        return present.to(counts.dtype)
    # 1 - beta^n = -expm1(n log beta): no cancellation for beta near 1 and small n.
    n = torch.where(present, counts, torch.ones_like(counts))
    weights = torch.where(present, (1.0 - beta) / -torch.expm1(n * math.log(beta)), 0.0)
    return weights * (present.sum() / weights.sum().clamp_min(torch.finfo(counts.dtype).tiny))


def class_balanced_loss(
    logits: Tensor,
    target: Tensor,
    *,
    samples_per_class: Counts,
    beta: float = 0.9999,
    base: str = "focal",
    gamma: float = 2.0,
    sync: str = "local",
    sample_weight: Optional[Tensor] = None,
    validate: bool = True,
    reduction: str = "mean",
) -> Tensor:
    r"""Class-balanced loss: a base loss weighted by the inverse effective number of samples.

    .. math::

        w_c = \frac{1 - \beta}{1 - \beta^{n_c}}, \quad
        \text{normalized so that } \sum_c w_c = C, \qquad
        \ell_i = w_{y_i}\, L_i

    with :math:`L_i` the base loss of sample :math:`i`: ``"ce"`` the softmax cross-entropy,
    ``"bce"`` :math:`\sum_c \mathrm{BCE}(x_{ic}, [y_i = c])`, ``"focal"``
    :math:`\sum_c \mathrm{FL}_\gamma(x_{ic}, [y_i = c])` (sigmoid focal loss with
    ``alpha=None``: the class weights replace alpha, as in the paper). :math:`\beta = 0`
    gives uniform weights (the plain base loss); :math:`\beta \to 1` approaches inverse
    class frequency.

    ``mean`` is :math:`\sum_i s_i w_{y_i} L_i / \sum_i s_i` (:math:`s` = ``sample_weight``,
    else 1): the paper's average of :math:`w_y L_i`, **not** divided by :math:`\sum_i w_{y_i}`
    (unlike ``cross_entropy(weight=...)``). The authors' code averages the sigmoid losses over
    the N x C entries for ``"bce"``; here they are summed over classes, as for ``"focal"``.

    Args:
        logits: (N, C) floating point, C >= 2.
        target: (N,) integer class ids in [0, C).
        samples_per_class: (C,) counts n_c > 0 (a tensor or a sequence); a zero count would
            give an infinite weight and is refused. ``"batch"`` counts the classes of each
            call's ``target`` instead (a class absent from the batch has no sample to weight;
            the weights are normalized to mean 1 over the classes present).
        beta: in [0, 1); the paper uses 0.9, 0.99, 0.999 or 0.9999.
        base: ``"ce" | "bce" | "focal"``.
        gamma: focusing exponent of the ``"focal"`` base, >= 0 (ignored by the others).
        sync: ``"local"`` or ``"global"``: with ``"global"`` the batch counts (for
            ``samples_per_class="batch"``) and the mean's sums run over every process of the
            default group, so each rank returns the loss of the global batch (see
            :mod:`losslab.distributed` for the gradient scaling under DDP).
        sample_weight: (N,) non-negative weights along dim 0.
        validate: check class ids and counts (one host sync).
        reduction: ``"mean" | "sum" | "none"``; ``none`` returns (N,).

    Reference: Cui et al., "Class-Balanced Loss Based on Effective Number of Samples",
    CVPR 2019.

    >>> import torch
    >>> logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    >>> target = torch.tensor([0, 2])
    >>> class_balanced_loss(logits, target, samples_per_class=[100, 10, 1], beta=0.99, base="ce")
    tensor(2.0808)
    """
    fn = "class_balanced_loss"

    def checks() -> tuple[Optional[Tensor], float, str, float, str]:
        check_class_target(
            fn,
            logits,
            target,
            ignore_index=None,
            sample_weight=sample_weight,
            validate=validate,
            reduction=reduction,
        )
        if logits.dim() != 2:
            fail(fn, "logits", "have shape (N, C)", tuple(logits.shape), raw_got=True)
        return _check_options(
            fn,
            samples_per_class,
            beta,
            base,
            gamma,
            sync,
            num_classes=logits.shape[1],
            validate=validate,
        )

    # sync="global": a bad class id on one rank must not leave the others waiting in the
    # collectives below (batch counts, the mean): every rank raises or none does.
    counts, beta, base, gamma, sync = check_on_every_rank(
        fn, checks, sync=sync, validate=validate, like=logits
    )
    x = upcast(logits)
    target = target.long()  # cross_entropy, one_hot and indexing need int64
    if counts is None:  # "batch": this call's class counts (every rank's, with sync="global")
        found = torch.bincount(target, minlength=x.shape[1]).to(torch.float64)
        counts = sync_sum(found, sync)
    weights = _class_weights(counts, beta).to(dtype=compute_dtype(logits), device=logits.device)

    if base == "ce":
        per_sample = F.cross_entropy(x, target, reduction="none")
    else:
        onehot = F.one_hot(target, x.shape[1]).to(x.dtype)
        if base == "bce":
            per_class = F.binary_cross_entropy_with_logits(x, onehot, reduction="none")
        else:
            per_class = sigmoid_focal_elementwise(x, onehot, None, gamma)
        per_sample = per_class.sum(dim=1)
    loss = weights[target] * per_sample
    return reduce(
        loss, reduction, sample_weight=sample_weight, out_dtype=output_dtype(logits), sync=sync
    )


@register
class ClassBalancedLoss(Loss):
    """Class-balanced loss (effective number of samples) over CE, BCE or focal."""

    key = "class_balanced"
    family = "classification"
    input_kind = "logits"
    pointwise = False
    needs_global_stats = True  # samples_per_class="batch"; sync="global" makes it exact
    function = staticmethod(class_balanced_loss)

    def __init__(
        self,
        *,
        samples_per_class: Counts,
        beta: float = 0.9999,
        base: str = "focal",
        gamma: float = 2.0,
        sync: str = "local",
        validate: bool = True,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        fn = "ClassBalancedLoss"
        _check_options(fn, samples_per_class, beta, base, gamma, sync, validate=validate)
        check_reduction(fn, reduction)
        self._store(
            samples_per_class=samples_per_class,
            beta=beta,
            base=base,
            gamma=gamma,
            sync=sync,
            validate=validate,
            reduction=reduction,
        )
