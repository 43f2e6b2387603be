"""The shared signature of the overlap losses: options, the pipeline, the module base."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Callable, Optional, Union

from torch import Tensor

from losslab._checks import as_class_weight, check_reduction
from losslab._reduce import output_dtype
from losslab.distributed import check_sync
from losslab.losses.base import Loss
from losslab.losses.segmentation._inputs import check_common_options, prepare_inputs
from losslab.losses.segmentation._overlap import (
    Stats,
    check_overlap_options,
    finish,
    overlap_stats,
)

ClassWeight = Union[Tensor, Sequence[float], None]
PerClassLoss = Callable[[Stats], Tensor]


COMMON = (
    "mode",
    "activation",
    "class_weight",
    "ignore_index",
    "classes",
    "include_background",
    "aggregate",
    "smooth",
    "eps",
    "empty",
    "sync",
)
PER_CALL = ("sample_weight", "validate", "reduction")


def common(namespace: dict[str, Any], *extra: str) -> dict[str, Any]:
    """The shared options out of a caller's ``locals()``: one list of names, written once."""
    return {name: namespace[name] for name in (*COMMON, *extra)}


def check_options(
    fn: str,
    *,
    mode: str,
    activation: Optional[str],
    class_weight: ClassWeight,
    ignore_index: Optional[int],
    classes: Optional[Sequence[int]],
    include_background: bool,
    aggregate: str,
    smooth: float,
    eps: float,
    empty: str,
    sync: str,
    reduction: str,
) -> dict[str, Any]:
    """Every option the overlap losses share, checked once; returns them normalized."""
    mode, activation, ignore_index, classes_t = check_common_options(
        fn,
        mode=mode,
        activation=activation,
        ignore_index=ignore_index,
        classes=classes,
        include_background=include_background,
    )
    smooth, eps = check_overlap_options(
        fn, aggregate=aggregate, smooth=smooth, eps=eps, empty=empty
    )
    sync = check_sync(fn, sync)
    check_reduction(fn, reduction)
    class_weight = as_class_weight(fn, "class_weight", class_weight, None)
    return dict(
        mode=mode,
        activation=activation,
        class_weight=class_weight,
        ignore_index=ignore_index,
        classes=classes_t,
        include_background=include_background,
        aggregate=aggregate,
        smooth=smooth,
        eps=eps,
        empty=empty,
        sync=sync,
    )


def overlap_loss(
    fn: str,
    logits: Tensor,
    target: Tensor,
    per_class: PerClassLoss,
    *,
    squared: bool = False,
    mode: str,
    activation: Optional[str],
    class_weight: ClassWeight,
    ignore_index: Optional[int],
    classes: Optional[Sequence[int]],
    include_background: bool,
    aggregate: str,
    smooth: float,
    eps: float,
    empty: str,
    sync: str,
    sample_weight: Optional[Tensor],
    validate: bool,
    reduction: str,
) -> Tensor:
    """prepare -> soft statistics -> per (unit, class) loss -> class average -> reduction."""
    opts = check_options(
        fn,
        mode=mode,
        activation=activation,
        class_weight=class_weight,
        ignore_index=ignore_index,
        classes=classes,
        include_background=include_background,
        aggregate=aggregate,
        smooth=smooth,
        eps=eps,
        empty=empty,
        sync=sync,
        reduction=reduction,
    )
    prep = prepare_inputs(  # activated inside the sums, a slice of images at a time
        fn,
        logits,
        target,
        mode=opts["mode"],
        activation=opts["activation"],
        ignore_index=opts["ignore_index"],
        classes=opts["classes"],
        include_background=include_background,
        validate=validate,
    )
    stats = overlap_stats(
        fn,
        prep,
        aggregate=aggregate,
        squared=squared,
        sample_weight=sample_weight,
        validate=validate,
        sync=opts["sync"],
    )
    loss = per_class(stats)
    return finish(
        fn,
        loss,
        stats,
        empty=empty,
        class_weight=opts["class_weight"],
        num_classes=prep.num_classes,
        selected=prep.selected,
        aggregate=aggregate,
        sample_weight=sample_weight,
        reduction=reduction,
        out_dtype=output_dtype(logits),
        validate=validate,
        sync=opts["sync"],
    )


class OverlapLoss(Loss):
    """Base of the overlap losses: metadata and the shared constructor checks."""

    family = "segmentation"
    input_kind = "logits"
    pointwise = False
    needs_global_stats = True  # aggregate="batch"; sync="global" makes it exact
