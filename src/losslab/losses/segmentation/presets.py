"""Named presets built with the composition algebra: BCE + Dice, CE + Dice, focal + Dice.

Each preset is a :class:`~losslab.compose.WeightedSum` of two named terms, so ``evaluate()``
reports both components; inside a larger sum it flattens like any other sum.
"""

from __future__ import annotations

from typing import Any, Optional

from losslab._checks import check_choice, check_float
from losslab._registry import register
from losslab.compose.spec import term_to_spec
from losslab.compose.weighted_sum import WeightedSum
from losslab.losses.base import Loss
from losslab.losses.classification.bce import BCEWithLogitsLoss
from losslab.losses.classification.cross_entropy import CrossEntropyLoss
from losslab.losses.classification.focal import SigmoidFocalLoss
from losslab.losses.segmentation.dice import DiceLoss

__all__ = ["BCEDiceLoss", "CEDiceLoss", "FocalDiceLoss"]


class _Preset(WeightedSum):
    family = "segmentation"
    input_kind = "logits"
    pointwise = False
    preset = True

    def _build(
        self, fn: str, first: Loss, first_weight: float, dice_weight: float, **options: Any
    ) -> None:
        first_weight = check_float(fn, f"{first.key}_weight", first_weight, low=0.0)
        dice_weight = check_float(fn, "dice_weight", dice_weight, low=0.0)
        WeightedSum.__init__(self, [first, DiceLoss(**options)], [first_weight, dice_weight])
        self._options: dict[str, Any] = {
            f"{first.key}_weight": first_weight,
            "dice_weight": dice_weight,
        }

    def spec_kwargs(self) -> dict[str, Any]:
        return {k: v for k, v in self._options.items() if v != 0.5}

    def to_spec(self) -> str:
        return term_to_spec(self)

    def to_dict(self) -> dict[str, Any]:
        from losslab.compose.spec import term_to_dict

        return term_to_dict(self, weight=1.0)


@register
class BCEDiceLoss(_Preset):
    """BCE + soft Dice (binary or multilabel), reporting both components"""

    key = "bce_dice"

    def __init__(
        self, *, bce_weight: float = 0.5, dice_weight: float = 0.5, mode: str = "binary"
    ) -> None:
        check_choice("BCEDiceLoss", "mode", mode, ("binary", "multilabel"))
        self._build("BCEDiceLoss", BCEWithLogitsLoss(), bce_weight, dice_weight, mode=mode)
        self._options["mode"] = mode

    def spec_kwargs(self) -> dict[str, Any]:
        out = super().spec_kwargs()
        if out.get("mode") == "binary":
            del out["mode"]
        return out


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
    ) -> None:
        self._build(
            "CEDiceLoss",
            CrossEntropyLoss(ignore_index=ignore_index),
            ce_weight,
            dice_weight,
            mode="multiclass",
            ignore_index=ignore_index,
        )
        if ignore_index is not None:
            self._options["ignore_index"] = ignore_index


@register
class FocalDiceLoss(_Preset):
    """Sigmoid focal + soft Dice (binary or multilabel), reporting both components"""

    key = "focal_dice"

    def __init__(
        self, *, focal_weight: float = 0.5, dice_weight: float = 0.5, mode: str = "binary"
    ) -> None:
        check_choice("FocalDiceLoss", "mode", mode, ("binary", "multilabel"))
        self._build("FocalDiceLoss", SigmoidFocalLoss(), focal_weight, dice_weight, mode=mode)
        self._options["mode"] = mode

    def spec_kwargs(self) -> dict[str, Any]:
        out = super().spec_kwargs()
        if out.get("mode") == "binary":
            del out["mode"]
        return out
