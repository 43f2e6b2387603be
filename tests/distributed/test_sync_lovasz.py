"""sync="global" on the Lovasz losses and the segmentation presets: 2 and 3 gloo processes with
uneven shards (one empty) equal one process on the whole batch, in value and DDP-averaged
gradient (1e-10, float64)."""

from __future__ import annotations

import functools
from typing import Any

import pytest
import torch

import losslab
import losslab.functional as LF
from tests._distributed import run_workers
from tests.distributed._sync import SyncCase, check_sync_cases


def _call_preset(
    cls: type, options: dict[str, Any], logits: torch.Tensor, target: torch.Tensor, **kw: Any
) -> torch.Tensor:
    sync = kw.pop("sync")
    out: torch.Tensor = cls(**options, sync=sync)(logits, target, **kw)
    return out


def _preset(cls: type, **options: Any) -> Any:
    """A preset as a picklable function of (logits, target, sync=...), for SyncCase."""
    return functools.partial(_call_preset, cls, options)


def _cases() -> list[SyncCase]:
    g = torch.Generator().manual_seed(3)
    d = torch.float64
    logits = torch.randn(7, 4, 5, 5, generator=g, dtype=d) * 2
    ids = torch.randint(0, 4, (7, 5, 5), generator=g)
    ids[:, 0, :2] = 255  # ignored pixels
    ids[ids == 3] = 2
    ids[6, 1, 1] = 3  # class 3 only in the last image (one rank's shard)
    ids[2] = 255  # an all-ignored image
    binary = torch.randn(7, 1, 6, 6, generator=g, dtype=d) * 2
    mask = (torch.rand(7, 1, 6, 6, generator=g) < 0.3).to(d)
    mask_ign = mask.clone()
    mask_ign[:, :, 0, :3] = 255.0
    bin_ids = (torch.rand(7, 6, 6, generator=g) < 0.4).long()
    bin_ids[:, 1, :] = 255
    multilabel = torch.randn(7, 3, 4, 4, generator=g, dtype=d)
    ml_t = (torch.rand(7, 3, 4, 4, generator=g) < 0.4).to(d)
    weights = torch.rand(7, generator=g, dtype=d) + 0.5
    mc = {"mode": "multiclass", "ignore_index": 255}
    sw = {"sample_weight": weights}
    return [
        # Lovasz-softmax, aggregate="batch": the global sort per class.
        SyncCase(
            "softmax batch ids", LF.lovasz_softmax_loss, (logits, ids), {**mc, "aggregate": "batch"}
        ),
        SyncCase(
            "softmax batch all classes, weighted",
            LF.lovasz_softmax_loss,
            (logits, ids),
            {**mc, "aggregate": "batch", "present_only": False, **sw},
            split_kwargs=("sample_weight",),
        ),
        SyncCase(
            "softmax batch class subset, no background",
            LF.lovasz_softmax_loss,
            (logits, ids),
            {**mc, "aggregate": "batch", "classes": [1, 3], "include_background": False},
        ),
        SyncCase(
            "softmax batch multilabel dense",
            LF.lovasz_softmax_loss,
            (multilabel, ml_t),
            {"mode": "multilabel", "aggregate": "batch"},
        ),
        SyncCase(
            "softmax batch binary dense ignore, weighted",
            LF.lovasz_softmax_loss,
            (binary, mask_ign),
            {"mode": "binary", "ignore_index": 255, "aggregate": "batch", **sw},
            split_kwargs=("sample_weight",),
        ),
        # Lovasz-softmax, aggregate="image": the mean over images is global.
        SyncCase(
            "softmax image mean, weighted",
            LF.lovasz_softmax_loss,
            (logits, ids),
            {**mc, **sw},
            split_kwargs=("sample_weight",),
        ),
        SyncCase(
            "softmax image sum, all classes",
            LF.lovasz_softmax_loss,
            (logits, ids),
            {**mc, "present_only": False, "reduction": "sum"},
        ),
        # Lovasz hinge (binary).
        SyncCase("hinge batch dense", LF.lovasz_hinge_loss, (binary, mask), {"aggregate": "batch"}),
        SyncCase(
            "hinge batch ids ignore, weighted",
            LF.lovasz_hinge_loss,
            (binary, bin_ids),
            {"ignore_index": 255, "aggregate": "batch", **sw},
            split_kwargs=("sample_weight",),
        ),
        SyncCase(
            "hinge batch dense ignore",
            LF.lovasz_hinge_loss,
            (binary, mask_ign),
            {"ignore_index": 255, "aggregate": "batch"},
        ),
        SyncCase(
            "hinge image mean, weighted",
            LF.lovasz_hinge_loss,
            (binary, mask),
            sw,
            split_kwargs=("sample_weight",),
        ),
        # Presets: the pixel term's mean and the Dice term both over every rank.
        SyncCase(
            "ce_dice batch",
            _preset(losslab.CEDiceLoss, ignore_index=255, aggregate="batch"),
            (logits, ids),
        ),
        SyncCase(
            "bce_dice image, weighted",
            _preset(losslab.BCEDiceLoss),
            (binary, mask),
            sw,
            split_kwargs=("sample_weight",),
        ),
        SyncCase(
            "focal_dice multilabel batch",
            _preset(losslab.FocalDiceLoss, mode="multilabel", aggregate="batch", dice_weight=0.8),
            (multilabel, ml_t),
        ),
    ]


@pytest.mark.slow
@pytest.mark.parametrize("world", [2, 3])
def test_global_sync_equals_one_process(world: int) -> None:
    check_sync_cases(world, _cases())


def _bad_on_one_rank(rank: int, world: int) -> list[str]:
    """Rank 1 holds an out-of-range class id: every rank must raise, none hang."""
    calls: list[tuple[str, int, Any]] = [
        ("lovasz_softmax_loss", 3, {"aggregate": "batch"}),
        ("lovasz_softmax_loss", 3, {"aggregate": "image"}),
        ("lovasz_hinge_loss", 1, {"aggregate": "batch"}),
        ("lovasz_hinge_loss", 1, {"aggregate": "image"}),
        ("cross_entropy_loss", 3, None),  # ce_dice: the pixel term's checks agree first
    ]
    errors = []
    for name, channels, kw in calls:
        x = torch.randn(2, channels, 4, 4, dtype=torch.float64, requires_grad=True)
        y = torch.randint(0, max(channels, 2), (2, 4, 4))
        if rank == 1:
            y[0, 0, 0] = 7
        try:
            if kw is None:
                losslab.CEDiceLoss(aggregate="batch", sync="global")(x, y).backward()
            else:
                getattr(LF, name)(x, y, **kw, sync="global").backward()
            errors.append("no error")
        except ValueError as exc:
            errors.append(f"{name}|{exc}")
    return errors


@pytest.mark.slow
def test_invalid_values_on_one_rank_raise_on_every_rank() -> None:
    results = run_workers(2, _bad_on_one_rank, timeout=60.0)
    for rank, errors in enumerate(results):
        for message in errors:
            name, _, text = message.partition("|")
            assert text.startswith(f"{name}(): `target` must"), (rank, message)
            assert ("other rank" in text) == (rank == 0), (rank, message)
            if rank == 1:
                assert "class ids in [0," in text, message


@pytest.mark.parametrize("key", ["lovasz_softmax", "lovasz_hinge"])
def test_sync_is_validated_stored_and_a_no_op_without_a_process_group(key: str) -> None:
    g = torch.Generator().manual_seed(0)
    channels = 3 if key == "lovasz_softmax" else 1
    x = torch.randn(3, channels, 4, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, max(channels, 2), (3, 4, 4), generator=g)
    cls: Any = losslab.lookup(key)
    fn = cls.function
    assert cls.needs_global_stats is True
    for aggregate in ("image", "batch"):
        for reduction in ("mean", "sum", "none"):
            kw = {"aggregate": aggregate, "reduction": reduction}
            torch.testing.assert_close(
                fn(x, y, **kw, sync="global"), fn(x, y, **kw), rtol=0, atol=0
            )
    with pytest.raises(
        ValueError, match=rf"{key}_loss\(\): `sync` must be one of 'local' \| 'global'"
    ):
        fn(x, y, sync="world")
    with pytest.raises(ValueError, match=r"Loss\(\): `sync` must be one of 'local' \| 'global'"):
        cls(sync="all")
    module = cls(aggregate="batch", sync="global")
    assert module.hparams["sync"] == "global" and "sync='global'" in module.to_spec()
    torch.testing.assert_close(module(x, y), fn(x, y, aggregate="batch"), rtol=0, atol=0)


def test_empty_shard_runs_forward_and_backward() -> None:
    """A rank's empty shard (B = 0) goes through every path without a process group."""
    for fn, channels in ((LF.lovasz_softmax_loss, 3), (LF.lovasz_hinge_loss, 1)):
        for aggregate in ("image", "batch"):
            x = torch.randn(0, channels, 4, 4, dtype=torch.float64, requires_grad=True)
            y = torch.zeros(0, 4, 4, dtype=torch.long)
            value = fn(
                x,
                y,
                aggregate=aggregate,
                sync="global",
                sample_weight=torch.ones(0, dtype=torch.float64),
            )
            value.backward()
            assert value.item() == 0.0
            assert x.grad is not None and x.grad.shape == x.shape


@pytest.mark.parametrize("key", ["bce_dice", "ce_dice", "focal_dice"])
def test_presets_forward_aggregate_and_sync(key: str) -> None:
    cls: Any = losslab.lookup(key)
    assert cls.needs_global_stats is True
    preset = cls(aggregate="batch", sync="global")
    dice: Any = preset.term_modules["dice"]
    assert dice.hparams["aggregate"] == "batch" and dice.hparams["sync"] == "global"
    spec = preset.to_spec()
    assert "aggregate='batch'" in spec and "sync='global'" in spec
    rebuilt = losslab.parse(spec)
    assert type(rebuilt) is type(preset) and rebuilt.to_spec() == spec
    assert losslab.parse(cls().to_spec()).to_spec() == key  # defaults stay out of the spec
    g = torch.Generator().manual_seed(1)
    if key == "ce_dice":
        x, y = torch.randn(2, 3, 4, 4, generator=g), torch.randint(0, 3, (2, 4, 4), generator=g)
    else:
        x = torch.randn(2, 1, 4, 4, generator=g)
        y = (torch.rand(2, 1, 4, 4, generator=g) < 0.5).float()
    # No process group: sync="global" is the local preset, bit for bit.
    torch.testing.assert_close(preset(x, y), cls(aggregate="batch")(x, y), rtol=0, atol=0)
    local: Any = cls()
    assert local.term_modules["dice"].hparams["aggregate"] == "image"
    with pytest.raises(ValueError, match=rf"{cls.__name__}\(\): `sync` must be one of"):
        cls(sync="world")
    with pytest.raises(ValueError, match=rf"{cls.__name__}\(\): `aggregate` must be one of"):
        cls(aggregate="images")
