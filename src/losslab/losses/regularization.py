"""Parameter regularizers as composable loss terms: L1, L2 and elastic net.

``ce + 1e-4 * L2Penalty(model)`` adds a penalty over the model's weights to a loss.
By default biases and the parameters of normalization layers are left out (the usual
practice: decaying a BatchNorm scale or a bias regularizes nothing useful).

A note on Adam: an L2 term in the loss is *not* AdamW's decoupled weight decay. With
Adam the penalty's gradient is rescaled per coordinate by the adaptive denominator, so
parameters with large gradient variance are barely decayed (Loshchilov & Hutter, 2019,
"Decoupled Weight Decay Regularization"). Use ``torch.optim.AdamW(weight_decay=...)``
for decoupled decay; use ``L2Penalty`` when you want the penalty in the objective
(SGD, where the two coincide: ``lam * L2Penalty`` equals ``weight_decay = 2 * lam``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Callable, Optional, Union

import torch
from torch import Tensor, nn

from losslab._checks import check_choice, check_float, fail
from losslab._registry import register
from losslab.losses.base import Loss

__all__ = [
    "ElasticNetPenalty",
    "L1Penalty",
    "L2Penalty",
    "elastic_net_penalty",
    "l1_penalty",
    "l2_penalty",
    "select_parameters",
]

NORM_LAYERS: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.LocalResponseNorm,
    *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()),
)

ParamFilter = Callable[[str, Tensor], bool]
Params = Union[nn.Module, Iterable[Tensor], Iterable[tuple[str, Tensor]]]


def select_parameters(
    source: Params,
    *,
    exclude_bias: bool = True,
    exclude_norm: bool = True,
    filter: Optional[ParamFilter] = None,
    fn: str = "select_parameters",
) -> list[tuple[str, Tensor]]:
    """The (name, parameter) pairs a penalty covers.

    From a module: every parameter that requires grad, minus biases (names ending in
    ``bias``) and the parameters of normalization layers unless told otherwise, then
    ``filter(name, param)``. From an iterable of tensors or (name, tensor) pairs: all of
    them (names ``"0"``, ``"1"``, ... for bare tensors), then ``filter``. Each parameter
    is counted once even when shared.

    >>> net = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3), nn.Linear(3, 1))
    >>> [name for name, _ in select_parameters(net)]
    ['0.weight', '2.weight']
    """
    if filter is not None and not callable(filter):
        fail(
            fn,
            "filter",
            "be a callable (name, param) -> bool or None",
            type(filter).__name__,
            kind=TypeError,
            raw_got=True,
        )
    pairs: list[tuple[str, Tensor]] = []
    if isinstance(source, nn.Module):
        norm_params: set[int] = set()
        if exclude_norm:
            for module in source.modules():
                if isinstance(module, NORM_LAYERS):
                    norm_params.update(id(p) for p in module.parameters(recurse=False))
        for name, param in source.named_parameters():
            if not param.requires_grad or id(param) in norm_params:
                continue
            if exclude_bias and name.rsplit(".", 1)[-1] == "bias":
                continue
            pairs.append((name, param))
    elif isinstance(source, Tensor):
        fail(
            fn,
            "params",
            "be a module or an iterable of tensors (wrap one tensor in a list)",
            "a single Tensor",
            kind=TypeError,
            raw_got=True,
        )
    elif isinstance(source, Iterable):
        for i, item in enumerate(source):
            if isinstance(item, Tensor):
                pairs.append((str(i), item))
            elif (
                isinstance(item, tuple)
                and len(item) == 2
                and isinstance(item[0], str)
                and isinstance(item[1], Tensor)
            ):
                pairs.append(item)
            else:
                fail(
                    fn,
                    "params",
                    "hold tensors or (name, tensor) pairs",
                    f"an item of type {type(item).__name__}",
                    kind=TypeError,
                    raw_got=True,
                )
    else:
        fail(
            fn,
            "params",
            "be a module or an iterable of tensors",
            type(source).__name__,
            kind=TypeError,
            raw_got=True,
        )
    seen: set[int] = set()
    out: list[tuple[str, Tensor]] = []
    for name, p in pairs:
        if id(p) in seen or (filter is not None and not filter(name, p)):
            continue
        if not p.is_floating_point():
            fail(
                fn,
                "params",
                "hold floating-point tensors",
                f"{name} of dtype {p.dtype}",
                kind=TypeError,
                raw_got=True,
            )
        seen.add(id(p))
        out.append((name, p))
    return out


def _tensors(fn: str, params: Any) -> list[Tensor]:
    if isinstance(params, (nn.Module, Tensor)):
        fail(
            fn,
            "params",
            "be an iterable of tensors (use select_parameters() or a Penalty module for a model)",
            type(params).__name__,
            kind=TypeError,
            raw_got=True,
        )
    items = list(params)
    for i, p in enumerate(items):
        if not isinstance(p, Tensor) or not p.is_floating_point():
            fail(
                fn,
                "params",
                "hold floating-point tensors",
                f"item {i} of type {type(p).__name__}",
                kind=TypeError,
                raw_got=True,
            )
    if items:
        device = items[0].device
        for i, p in enumerate(items):
            if p.device != device:
                fail(
                    fn,
                    "params",
                    f"be on one device ({device})",
                    f"item {i} on {p.device}",
                    raw_got=True,
                )
    return items


def _penalty(
    fn: str, params: Iterable[Tensor], reduction: str, per_tensor: Callable[[Tensor], Tensor]
) -> Tensor:
    check_choice(fn, "reduction", reduction, ("sum", "mean"))
    items = _tensors(fn, params)
    if not items:
        return torch.zeros(())
    total = torch.stack(
        [per_tensor(p.float() if p.dtype in (torch.float16, torch.bfloat16) else p) for p in items]
    ).sum()
    if reduction == "mean":
        total = total / sum(p.numel() for p in items)
    return total


def l1_penalty(params: Iterable[Tensor], *, reduction: str = "sum") -> Tensor:
    r"""L1 norm of parameters: :math:`\sum_k \sum_i |\theta_{k,i}|` (``mean``: divided by the count).

    Args:
        params: an iterable of floating-point tensors on one device.
        reduction: ``"sum"`` (default) or ``"mean"`` over all elements.

    >>> l1_penalty([torch.tensor([1.0, -2.0]), torch.tensor([[3.0]])])
    tensor(6.)
    """
    return _penalty("l1_penalty", params, reduction, lambda p: p.abs().sum())


def l2_penalty(params: Iterable[Tensor], *, reduction: str = "sum") -> Tensor:
    r"""Squared L2 norm of parameters: :math:`\sum_k \sum_i \theta_{k,i}^2`.

    Its gradient is :math:`2\theta`; ``lam * l2_penalty`` under plain SGD equals
    ``weight_decay = 2 * lam``. Under Adam it is not weight decay (see the module docs).

    Args:
        params: an iterable of floating-point tensors on one device.
        reduction: ``"sum"`` (default) or ``"mean"`` over all elements.

    >>> l2_penalty([torch.tensor([1.0, -2.0]), torch.tensor([[3.0]])])
    tensor(14.)
    """
    return _penalty("l2_penalty", params, reduction, lambda p: (p * p).sum())


def elastic_net_penalty(
    params: Iterable[Tensor], *, l1_ratio: float = 0.5, reduction: str = "sum"
) -> Tensor:
    r"""Elastic net: :math:`r \sum|\theta| + (1 - r) \sum \theta^2` with ``l1_ratio`` :math:`r \in [0, 1]`.

    (Zou & Hastie, 2005.) ``l1_ratio=1`` is the L1 penalty, ``0`` the squared L2 penalty.

    >>> elastic_net_penalty([torch.tensor([1.0, -2.0])], l1_ratio=0.25)
    tensor(4.5000)
    """
    r = check_float("elastic_net_penalty", "l1_ratio", l1_ratio, low=0.0, high=1.0)
    return _penalty(
        "elastic_net_penalty",
        params,
        reduction,
        lambda p: r * p.abs().sum() + (1.0 - r) * (p * p).sum(),
    )


class _Penalty(Loss):
    """Shared machinery: select the parameters once, ignore (pred, target) in a composition."""

    family = "regularization"
    input_kind = "none"
    pointwise = False

    def _select(
        self, params: Params, exclude_bias: bool, exclude_norm: bool, filter: Optional[ParamFilter]
    ) -> None:
        name = type(self).__name__
        if not isinstance(exclude_bias, bool) or not isinstance(exclude_norm, bool):
            raise TypeError(f"{name}(): `exclude_bias` and `exclude_norm` must be bools.")
        selected = select_parameters(
            params, exclude_bias=exclude_bias, exclude_norm=exclude_norm, filter=filter, fn=name
        )
        # A plain list: the model's parameters must not become this module's parameters
        # (they would be registered twice and saved in the loss's state_dict).
        self._selected = selected
        self.exclude_bias = exclude_bias
        self.exclude_norm = exclude_norm
        self.filter = filter

    @property
    def parameter_names(self) -> list[str]:
        """Names of the parameters this penalty covers."""
        return [n for n, _ in self._selected]

    def covered(self) -> Iterator[Tensor]:
        return (p for _, p in self._selected)

    def spec_kwargs(self) -> dict[str, Any]:
        out = super().spec_kwargs()
        if not self.exclude_bias:
            out["exclude_bias"] = False
        if not self.exclude_norm:
            out["exclude_norm"] = False
        if self.filter is not None:
            out["filter"] = self.filter  # refused by to_spec: a callable has no spec form
        return out

    def forward(self, *ignored: Tensor, **kwargs: Any) -> Tensor:
        fn = type(self).function
        assert fn is not None
        if kwargs:
            raise TypeError(
                f"{type(self).__name__}(): takes no keyword arguments per call; got {sorted(kwargs)}."
            )
        return fn(list(self.covered()), **self.hparams)

    @classmethod
    def _n_inputs(cls) -> int:
        return 0


@register
class L1Penalty(_Penalty):
    """L1 norm of a model's weights (biases and norm layers excluded by default)."""

    key = "l1"
    function = staticmethod(l1_penalty)

    def __init__(
        self,
        params: Params,
        *,
        exclude_bias: bool = True,
        exclude_norm: bool = True,
        filter: Optional[ParamFilter] = None,
        reduction: str = "sum",
    ) -> None:
        super().__init__()
        self._select(params, exclude_bias, exclude_norm, filter)
        check_choice(type(self).__name__, "reduction", reduction, ("sum", "mean"))
        self._store(reduction=reduction)


@register
class L2Penalty(_Penalty):
    """Squared L2 norm of a model's weights (not AdamW's decoupled decay under Adam)."""

    key = "l2"
    aliases = ("weight_decay",)
    function = staticmethod(l2_penalty)

    def __init__(
        self,
        params: Params,
        *,
        exclude_bias: bool = True,
        exclude_norm: bool = True,
        filter: Optional[ParamFilter] = None,
        reduction: str = "sum",
    ) -> None:
        super().__init__()
        self._select(params, exclude_bias, exclude_norm, filter)
        check_choice(type(self).__name__, "reduction", reduction, ("sum", "mean"))
        self._store(reduction=reduction)


@register
class ElasticNetPenalty(_Penalty):
    """Elastic-net penalty: l1_ratio * L1 + (1 - l1_ratio) * squared L2 of a model's weights."""

    key = "elastic_net"
    function = staticmethod(elastic_net_penalty)

    def __init__(
        self,
        params: Params,
        *,
        l1_ratio: float = 0.5,
        exclude_bias: bool = True,
        exclude_norm: bool = True,
        filter: Optional[ParamFilter] = None,
        reduction: str = "sum",
    ) -> None:
        super().__init__()
        self._select(params, exclude_bias, exclude_norm, filter)
        check_float(type(self).__name__, "l1_ratio", l1_ratio, low=0.0, high=1.0)
        check_choice(type(self).__name__, "reduction", reduction, ("sum", "mean"))
        self._store(l1_ratio=l1_ratio, reduction=reduction)
