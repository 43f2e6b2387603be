"""sync="global" on the overlap losses: 2 and 3 gloo processes with uneven shards (one empty)
equal one process on the whole batch, in value and DDP-averaged gradient (1e-10, float64)."""

from __future__ import annotations

import pytest
import torch

import losslab
import losslab.functional as LF
from tests.distributed._sync import SyncCase, check_sync_cases


def _cases() -> list[SyncCase]:
    g = torch.Generator().manual_seed(1)
    d = torch.float64
    logits = torch.randn(7, 4, 5, 5, generator=g, dtype=d) * 2
    ids = torch.randint(0, 4, (7, 5, 5), generator=g)
    ids[:, 0, :2] = 255  # ignored pixels
    ids[ids == 3] = 2
    ids[6, 1, 1] = 3  # class 3 only in the last image (one rank's shard)
    binary = torch.randn(7, 1, 6, 6, generator=g, dtype=d)
    mask = (torch.rand(7, 1, 6, 6, generator=g) < 0.3).to(d)
    multilabel = torch.randn(7, 3, 4, 4, generator=g, dtype=d)
    soft = torch.rand(7, 3, 4, 4, generator=g, dtype=d)
    weights = torch.rand(7, generator=g, dtype=d) + 0.5
    mc = {"mode": "multiclass", "ignore_index": 255}
    return [
        SyncCase(
            "dice batch multiclass", LF.dice_loss, (logits, ids), {**mc, "aggregate": "batch"}
        ),
        SyncCase(
            "dice batch skip, weighted",
            LF.dice_loss,
            (logits, ids),
            {**mc, "aggregate": "batch", "empty": "skip", "sample_weight": weights},
            split_kwargs=("sample_weight",),
        ),
        SyncCase(
            "dice image mean, weighted",
            LF.dice_loss,
            (logits, ids),
            {**mc, "sample_weight": weights},
            split_kwargs=("sample_weight",),
        ),
        SyncCase("dice image sum", LF.dice_loss, (logits, ids), {**mc, "reduction": "sum"}),
        SyncCase(
            "dice batch squared, class subset",
            LF.dice_loss,
            (logits, ids),
            {**mc, "aggregate": "batch", "squared": True, "include_background": False},
        ),
        SyncCase("jaccard batch binary", LF.jaccard_loss, (binary, mask), {"aggregate": "batch"}),
        SyncCase(
            "tversky batch multilabel soft",
            LF.tversky_loss,
            (multilabel, soft),
            {"mode": "multilabel", "aggregate": "batch", "alpha": 0.3, "beta": 0.7},
        ),
        SyncCase(
            "focal tversky image",
            LF.focal_tversky_loss,
            (logits, ids),
            {**mc, "empty": "zero"},
        ),
        SyncCase("log dice batch", LF.log_dice_loss, (logits, ids), {**mc, "aggregate": "batch"}),
        SyncCase(
            "log-cosh dice batch",
            LF.log_cosh_dice_loss,
            (binary, mask),
            {"aggregate": "batch"},
        ),
        SyncCase(
            "generalized dice batch",
            LF.generalized_dice_loss,
            (logits, ids),
            {**mc, "aggregate": "batch"},
        ),
    ]


@pytest.mark.slow
@pytest.mark.parametrize("world", [2, 3])
def test_global_sync_equals_one_process(world: int) -> None:
    check_sync_cases(world, _cases())


def test_option_is_validated_and_stored() -> None:
    x, y = torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 4))
    with pytest.raises(
        ValueError, match=r"dice_loss\(\): `sync` must be one of 'local' \| 'global'"
    ):
        LF.dice_loss(x, y, mode="multiclass", sync="all")
    with pytest.raises(ValueError, match=r"JaccardLoss\(\): `sync` must be one of"):
        losslab.JaccardLoss(sync="world")
    loss = losslab.DiceLoss(mode="multiclass", aggregate="batch", sync="global")
    assert loss.hparams["sync"] == "global" and "sync='global'" in loss.to_spec()
    torch.testing.assert_close(loss(x, y), LF.dice_loss(x, y, mode="multiclass", aggregate="batch"))
