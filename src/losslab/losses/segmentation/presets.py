"""Named presets built with the composition algebra: BCE + Dice, CE + Dice, focal + Dice.

Each preset is a :class:`~losslab.compose.WeightedSum` of two named terms, so ``evaluate()``
reports both components; inside a larger sum it flattens like any other sum.

``aggregate`` and ``sync`` reach the Dice term (``DiceLoss``'s defaults, ``"image"`` and
``"local"``). Under ``torch.distributed``, ``sync="global"`` makes the whole preset the loss of
the global batch: the Dice term sums its statistics over every process (``DiceLoss``), and the
pixel term's mean runs over every process's pixels (its weighted total and count summed in one
all-reduce), so every rank returns the same value and DDP's averaged gradients are exact for
uneven shards too (:mod:`losslab.distributed`).
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor

from losslab._checks import check_choice, check_float, fail
from losslab._reduce import compute_dtype, output_dtype, reduce
from losslab._registry import register
from losslab.compose.spec import term_to_spec
from losslab.compose.weighted_sum import WeightedSum
from losslab.distributed import check_sync, is_distributed, sync_sum
from losslab.losses.base import Loss
from losslab.losses.classification.bce import BCEWithLogitsLoss
from losslab.losses.classification.cross_entropy import CrossEntropyLoss
from losslab.losses.classification.focal import SigmoidFocalLoss
from losslab.losses.segmentation._overlap import AGGREGATES
from losslab.losses.segmentation.dice import DiceLoss

__all__ = ["BCEDiceLoss", "CEDiceLoss", "FocalDiceLoss"]


class _GlobalMean(Loss):
    """The pixel term of a preset with ``sync="global"``: its mean over every process's elements.

    The term runs with ``reduction="none"`` (its per-element losses, already times
    ``sample_weight`` and 0 at ignored positions); their total and the weighted count of the
    counted elements, with a failure flag, go through one all-reduce. So every rank returns
    the mean of the global batch, and a rank whose inputs fail its checks makes every rank
    raise instead of leaving the others waiting in a collective.
    """

    def forward(self, *inputs: Tensor, **kwargs: Any) -> Tensor:
        fn = type(self).function
        hparams = self.hparams
        if fn is None or hparams.get("reduction") != "mean" or not is_distributed():
            return super().forward(*inputs, **kwargs)  # one process: exactly the plain term
        logits, target = inputs
        # Both branches stack in one dtype (that of a healthy rank), so the all-reduce matches.
        ok = isinstance(logits, Tensor) and logits.is_floating_point()
        dtype = compute_dtype(logits) if ok else torch.float32
        error: Optional[Exception] = None
        try:
            per = fn(logits, target, **{**hparams, "reduction": "none"}, **kwargs).to(dtype)
            counted = torch.ones_like(per)
            ignore = hparams.get("ignore_index")
            if ignore is not None and target.shape == per.shape:  # class ids, or dense binary
                counted = (target != ignore).to(dtype)
            count = reduce(counted, "sum", sample_weight=kwargs.get("sample_weight"))
            stats = torch.stack([per.sum(), count, per.new_zeros(())])
        except (TypeError, ValueError) as exc:
            error = exc
            device = logits.device if isinstance(logits, Tensor) else None
            stats = torch.tensor([0.0, 0.0, 1.0], dtype=dtype, device=device)
        stats = sync_sum(stats, "global")
        if error is not None:
            raise error
        if hparams.get("validate", True) and float(stats[2].detach()) > 0:
            fail(
                fn.__name__,
                "target",
                "pass the input checks on every rank (sync='global')",
                f"invalid inputs on {int(stats[2].detach())} other rank(s)",
                raw_got=True,
            )
        total, count = stats[0], stats[1]
        # A zero count (every element ignored everywhere): 0 with zero gradient, never NaN.
        mean = total / count.clamp_min(torch.finfo(total.dtype).tiny)
        return mean.to(output_dtype(logits))


class _GlobalCE(_GlobalMean, CrossEntropyLoss):
    pass


class _GlobalBCE(_GlobalMean, BCEWithLogitsLoss):
    pass


class _GlobalFocal(_GlobalMean, SigmoidFocalLoss):
    pass


_GLOBAL: dict[type[Loss], type[Loss]] = {
    CrossEntropyLoss: _GlobalCE,
    BCEWithLogitsLoss: _GlobalBCE,
    SigmoidFocalLoss: _GlobalFocal,
}


class _Preset(WeightedSum):
    family = "segmentation"
    input_kind = "logits"
    pointwise = False
    preset = True
    # The Dice term's aggregate="batch" and the preset's sync="global" (a constructor option).
    needs_global_stats = True

    def _build(
        self,
        fn: str,
        first_cls: type[Loss],
        first_options: dict[str, Any],
        first_weight: float,
        dice_weight: float,
        *,
        aggregate: str,
        sync: str,
        **options: Any,
    ) -> None:
        first_weight = check_float(fn, f"{first_cls.key}_weight", first_weight, low=0.0)
        dice_weight = check_float(fn, "dice_weight", dice_weight, low=0.0)
        check_choice(fn, "aggregate", aggregate, AGGREGATES)
        check_sync(fn, sync)
        first = (_GLOBAL[first_cls] if sync == "global" else first_cls)(**first_options)
        dice = DiceLoss(**options, aggregate=aggregate, sync=sync)
        WeightedSum.__init__(self, [first, dice], [first_weight, dice_weight])
        self._options: dict[str, Any] = {
            f"{first_cls.key}_weight": first_weight,
            "dice_weight": dice_weight,
        }
        self._extra: dict[str, Any] = {}
        if aggregate != "image":
            self._extra["aggregate"] = aggregate
        if sync != "local":
            self._extra["sync"] = sync

    def spec_kwargs(self) -> dict[str, Any]:
        out = {k: v for k, v in self._options.items() if v != 0.5}
        return {**out, **self._extra}

    def to_spec(self) -> str:
        return term_to_spec(self)

    def to_dict(self) -> dict[str, Any]:
        from losslab.compose.spec import term_to_dict

        return term_to_dict(self, weight=1.0)


class _SigmoidPreset(_Preset):
    """A sigmoid pixel term + Dice, binary (the default, left out of specs) or multilabel."""

    def _build_sigmoid(
        self,
        fn: str,
        first_cls: type[Loss],
        first_weight: float,
        dice_weight: float,
        *,
        mode: str,
        aggregate: str,
        sync: str,
    ) -> None:
        check_choice(fn, "mode", mode, ("binary", "multilabel"))
        self._build(
            fn, first_cls, {}, first_weight, dice_weight, aggregate=aggregate, sync=sync, mode=mode
        )
        self._options["mode"] = mode

    def spec_kwargs(self) -> dict[str, Any]:
        out = super().spec_kwargs()
        if out.get("mode") == "binary":
            del out["mode"]
        return out


@register
class BCEDiceLoss(_SigmoidPreset):
    """BCE + soft Dice (binary or multilabel), reporting both components"""

    key = "bce_dice"

    def __init__(
        self,
        *,
        bce_weight: float = 0.5,
        dice_weight: float = 0.5,
        mode: str = "binary",
        aggregate: str = "image",
        sync: str = "local",
    ) -> None:
        self._build_sigmoid(
            "BCEDiceLoss",
            BCEWithLogitsLoss,
            bce_weight,
            dice_weight,
            mode=mode,
            aggregate=aggregate,
            sync=sync,
        )


@register
class CEDiceLoss(_Preset):
    """Cross-entropy + soft Dice over softmax (multiclass), reporting both components"""

    key = "ce_dice"

    def __init__(
        self,
        *,
        ce_weight: float = 0.5,
        dice_weight: float = 0.5,
        ignore_index: Optional[int] = None,
        aggregate: str = "image",
        sync: str = "local",
    ) -> None:
        self._build(
            "CEDiceLoss",
            CrossEntropyLoss,
            {"ignore_index": ignore_index},
            ce_weight,
            dice_weight,
            aggregate=aggregate,
            sync=sync,
            mode="multiclass",
            ignore_index=ignore_index,
        )
        if ignore_index is not None:
            self._options["ignore_index"] = ignore_index


@register
class FocalDiceLoss(_SigmoidPreset):
    """Sigmoid focal + soft Dice (binary or multilabel), reporting both components"""

    key = "focal_dice"

    def __init__(
        self,
        *,
        focal_weight: float = 0.5,
        dice_weight: float = 0.5,
        mode: str = "binary",
        aggregate: str = "image",
        sync: str = "local",
    ) -> None:
        self._build_sigmoid(
            "FocalDiceLoss",
            SigmoidFocalLoss,
            focal_weight,
            dice_weight,
            mode=mode,
            aggregate=aggregate,
            sync=sync,
        )
