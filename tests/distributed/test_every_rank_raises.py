"""sync="global": a bad input on one rank makes every rank raise, none hang.

Under ``sync="global"`` a loss runs collectives; a rank that raised on its own inputs before
them would leave the others waiting forever. ``losslab.distributed.check_on_every_rank`` runs
the input checks, then one all-reduce of a failure flag: the failing rank raises its own error,
the others a ValueError saying another rank's inputs failed. The spawned test runs every
scenario in ONE set of 2 gloo processes (``run_workers`` fails the test on a hang), then one
healthy call, so a collective left unmatched by an error shows up as a hang or a wrong value.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import pytest
import torch

import losslab
import losslab.functional as LF
from losslab.distributed import all_gather_cat, check_on_every_rank
from losslab.losses.segmentation._inputs import prepare, prepare_inputs
from losslab.losses.segmentation._overlap import overlap_stats
from tests._distributed import run_workers

D = torch.float64
OTHER = "must pass the input checks on every rank (sync='global'); got invalid inputs on 1 other rank(s)."


def _ids(rank: int, channels: int, *, bad: int, ignore: bool = False) -> torch.Tensor:
    g = torch.Generator().manual_seed(10 + rank)
    y = torch.randint(0, channels, (2, 4, 4), generator=g)
    if ignore:
        y[:, 0, :2] = 255
    if rank == 1:
        y[1, 2, 3] = bad
    return y


def _dense(rank: int, channels: int, bad: float) -> torch.Tensor:
    g = torch.Generator().manual_seed(20 + rank)
    t = (torch.rand(2, channels, 4, 4, generator=g, dtype=D) < 0.5).to(D)
    if rank == 1:
        t[0, 1, 2, 2] = bad
    return t


def _logits(channels: int, batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, channels, 4, 4, dtype=D, requires_grad=True)


# (name, the call on a rank, what rank 1's own message says)
Scenario = tuple[str, Callable[[int], torch.Tensor], str]


def _scenarios() -> list[Scenario]:
    mc: dict[str, Any] = {"mode": "multiclass", "sync": "global"}
    ml: dict[str, Any] = {"mode": "multilabel", "sync": "global"}
    ids_msg = "`target` must hold class ids in [0, 3); got 1 id(s) outside, e.g. 7."
    return [
        (
            "dice_loss",
            lambda r: LF.dice_loss(_logits(3), _ids(r, 3, bad=7), **mc, aggregate="batch"),
            ids_msg,
        ),
        (
            "dice_loss",
            lambda r: LF.dice_loss(
                _logits(3), _ids(r, 3, bad=7, ignore=True), **mc, ignore_index=255
            ),
            "`target` must hold class ids in [0, 3) or ignore_index=255",
        ),
        (
            "jaccard_loss",
            lambda r: LF.jaccard_loss(_logits(3), _ids(r, 3, bad=7), **mc, aggregate="batch"),
            ids_msg,
        ),
        (
            "generalized_dice_loss",
            lambda r: LF.generalized_dice_loss(_logits(3), _ids(r, 3, bad=-1), **mc),
            "`target` must hold class ids in [0, 3); got 1 id(s) outside, e.g. -1.",
        ),
        (
            "generalized_dice_loss",
            lambda r: LF.generalized_dice_loss(
                _logits(3), _ids(r, 3, bad=7), **mc, aggregate="batch"
            ),
            ids_msg,
        ),
        (
            "tversky_loss",  # binary ids {0, 1}
            lambda r: LF.tversky_loss(_logits(1), _ids(r, 2, bad=2), sync="global"),
            "`target` must hold class ids in [0, 2)",
        ),
        (
            "dice_loss",  # a NaN in a dense multilabel target
            lambda r: LF.dice_loss(_logits(3), _dense(r, 3, float("nan")), **ml, aggregate="batch"),
            "`target` must have values in [0, 1]; got 1 value(s) outside, e.g. nan.",
        ),
        (
            "dice_loss",
            lambda r: LF.dice_loss(_logits(3), _dense(r, 3, 1.5), **ml),
            "`target` must have values in [0, 1]; got 1 value(s) outside, e.g. 1.5.",
        ),
        (
            "log_cosh_dice_loss",  # probabilities given (activation=None) out of [0, 1]
            lambda r: LF.log_cosh_dice_loss(
                torch.rand(2, 3, 4, 4, dtype=D) + (r == 1) * 2.0,
                _dense(r, 3, 1.0),
                **ml,
                activation=None,
                aggregate="batch",
            ),
            "`logits` must have values in [0, 1]",
        ),
        (
            "dice_loss",  # a negative sample weight
            lambda r: LF.dice_loss(
                _logits(3),
                _ids(r, 3, bad=0),
                **mc,
                aggregate="batch",
                sample_weight=torch.tensor([1.0, -1.0 if r == 1 else 1.0], dtype=D),
            ),
            "`sample_weight` must have values in [0, inf)",
        ),
        (
            "dice_loss",  # the module
            lambda r: losslab.DiceLoss(mode="multiclass", aggregate="batch", sync="global")(
                _logits(3), _ids(r, 3, bad=7)
            ),
            ids_msg,
        ),
        (
            "class_balanced_loss",
            lambda r: LF.class_balanced_loss(
                torch.randn(5, 3, dtype=D, requires_grad=True),
                torch.tensor([0, 1, 2, 7 if r == 1 else 1, 0]),
                samples_per_class="batch",
                sync="global",
            ),
            ids_msg,
        ),
        (
            "class_balanced_loss",  # fixed counts: the mean's collective
            lambda r: LF.class_balanced_loss(
                torch.randn(5, 3, dtype=D, requires_grad=True),
                torch.tensor([0, 1, 2, 7 if r == 1 else 1, 0]),
                samples_per_class=[10, 5, 1],
                sync="global",
            ),
            ids_msg,
        ),
        (
            "wape_loss",  # aggregate="series": a zero series on rank 1 (the mean's collective)
            lambda r: LF.wape_loss(
                torch.rand(3, 4, dtype=D, requires_grad=True),
                (torch.rand(3, 4, dtype=D) + 0.5) * torch.tensor([[1.0], [float(r != 1)], [1.0]]),
                sync="global",
            ),
            "`target` must have a non-zero sum |target| in every series",
        ),
        (
            "wape_loss",  # a negative sample weight on rank 1 (before the batch all-reduce)
            lambda r: LF.wape_loss(
                torch.rand(3, 4, dtype=D, requires_grad=True),
                torch.rand(3, 4, dtype=D) + 0.5,
                aggregate="batch",
                sample_weight=torch.tensor([1.0, -1.0 if r == 1 else 1.0, 1.0], dtype=D),
                sync="global",
            ),
            "`sample_weight` must",
        ),
    ]


def _worker(rank: int, world: int) -> dict[str, Any]:
    torch.manual_seed(rank)
    messages: list[Optional[str]] = []
    for _, call, _ in _scenarios():
        try:
            call(rank).backward()
            messages.append(None)
        except ValueError as exc:
            messages.append(str(exc))
    # Both ranks bad: each raises its own error.
    both: Optional[str] = None
    try:
        y = _ids(1, 3, bad=8 + rank)
        LF.dice_loss(_logits(3), y, mode="multiclass", aggregate="batch", sync="global")
    except ValueError as exc:
        both = str(exc)
    # Different dtypes on the ranks: all_gather_cat refuses on every rank, before the data.
    dtype_error: Optional[str] = None
    try:
        all_gather_cat(torch.zeros(2 + rank, 3, dtype=D if rank == 0 else torch.float32))
    except ValueError as exc:
        dtype_error = str(exc)
    # Then a healthy call: every collective is still matched (same value on both ranks).
    g = torch.Generator().manual_seed(5)
    x_all = torch.randn(5, 3, 4, 4, generator=g, dtype=D)
    y_all = torch.randint(0, 3, (5, 4, 4), generator=g)
    lo, hi = (0, 3) if rank == 0 else (3, 5)
    x = x_all[lo:hi].clone().requires_grad_(True)
    value = LF.dice_loss(x, y_all[lo:hi], mode="multiclass", aggregate="batch", sync="global")
    value.backward()
    return {"messages": messages, "both": both, "dtype": dtype_error, "value": value.detach()}


@pytest.mark.slow
def test_bad_inputs_on_one_rank_raise_on_every_rank() -> None:
    results = run_workers(2, _worker, timeout=90.0)
    for i, (name, _, own) in enumerate(_scenarios()):
        good, bad = results[0]["messages"][i], results[1]["messages"][i]
        assert good is not None and bad is not None, (i, name, good, bad)
        assert good == f"{name}(): `target` {OTHER}", (i, good)
        assert bad.startswith(f"{name}(): "), (i, bad)
        assert own in bad, (i, bad)
        assert "other rank" not in bad, (i, bad)
    assert "class ids in [0, 3); got 1 id(s) outside, e.g. 8." in results[0]["both"]
    assert "class ids in [0, 3); got 1 id(s) outside, e.g. 9." in results[1]["both"]
    for r in results:
        assert r["dtype"] == (
            "all_gather_cat(): `x` must have the same dtype on every rank; "
            "got ['float64', 'float32'] by rank."
        ), r["dtype"]
    g = torch.Generator().manual_seed(5)
    x_all = torch.randn(5, 3, 4, 4, generator=g, dtype=D)
    y_all = torch.randint(0, 3, (5, 4, 4), generator=g)
    want = LF.dice_loss(x_all, y_all, mode="multiclass", aggregate="batch")
    for r in results:
        torch.testing.assert_close(r["value"], want, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------- no process group
def test_helper_without_a_process_group_is_exactly_the_checks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torch.distributed as dist

    def no_collective(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("no collective without a process group")

    monkeypatch.setattr(dist, "all_reduce", no_collective)
    like = torch.zeros(2)
    for sync in ("local", "global"):
        for validate in (True, False):
            assert check_on_every_rank("f", lambda: 42, sync=sync, validate=validate) == 42
            assert check_on_every_rank("f", lambda: None, sync=sync, like=like) is None
            for exc in (ValueError("f(): `target` must ..."), TypeError("f(): `x` must ...")):

                def boom(e: Exception = exc) -> None:
                    raise e

                with pytest.raises(type(exc)) as info:
                    check_on_every_rank("f", boom, sync=sync, validate=validate, like=like)
                assert info.value is exc  # the same exception object, untouched


def test_helper_is_public_and_documented() -> None:
    import losslab.distributed as distributed

    assert "check_on_every_rank" in distributed.__all__
    assert distributed.__doc__ is not None and "check_on_every_rank" in distributed.__doc__
    assert check_on_every_rank.__doc__ is not None


def test_prepare_inputs_leaves_the_value_checks_to_overlap_stats() -> None:
    """prepare_inputs() defers its value checks; overlap_stats() runs them before anything
    else; prepare() runs them at once. Single-process messages are unchanged."""
    x = torch.randn(2, 3, 4, 4, dtype=D)
    y = torch.randint(0, 3, (2, 4, 4))
    y[0, 0, 0] = 7
    opts: dict[str, Any] = dict(
        mode="multiclass",
        activation="auto",
        ignore_index=None,
        classes=None,
        include_background=True,
    )
    msg = r"^dice_loss\(\): `target` must hold class ids in \[0, 3\); got 1 id\(s\) outside"
    inputs = prepare_inputs("dice_loss", x, y, **opts, validate=True)
    with pytest.raises(ValueError, match=msg):
        inputs.check_values()
    for sync in ("local", "global"):
        with pytest.raises(ValueError, match=msg):
            overlap_stats("dice_loss", inputs, aggregate="batch", sync=sync)
    with pytest.raises(ValueError, match=msg):
        prepare("dice_loss", x, y, **opts, validate=True)
    with pytest.raises(ValueError, match=msg):
        LF.dice_loss(x, y, mode="multiclass", sync="global")
    # validate=False: nothing deferred, nothing checked.
    prepare_inputs("dice_loss", x, y, **opts, validate=False).check_values()
    y[0, 0, 0] = 2
    good = prepare("dice_loss", x, y, **opts, validate=True)
    good.check_values()  # a no-op: prepare() checked already


def test_sample_weight_checked_before_the_sums() -> None:
    x = torch.randn(2, 3, 4, 4, dtype=D)
    y = torch.randint(0, 3, (2, 4, 4))
    for aggregate in ("image", "batch"):
        with pytest.raises(ValueError, match=r"^jaccard_loss\(\): `sample_weight` must have val"):
            LF.jaccard_loss(
                x,
                y,
                mode="multiclass",
                aggregate=aggregate,
                sync="global",
                sample_weight=torch.tensor([1.0, -0.5], dtype=D),
            )
        with pytest.raises(ValueError, match=r"^jaccard_loss\(\): `sample_weight` must have sha"):
            LF.jaccard_loss(
                x, y, mode="multiclass", aggregate=aggregate, sample_weight=torch.ones(3, dtype=D)
            )


def test_class_balanced_bad_id_without_a_process_group() -> None:
    logits = torch.randn(4, 3, dtype=D)
    target = torch.tensor([0, 1, 3, 2])
    for sync in ("local", "global"):
        with pytest.raises(ValueError, match=r"class_balanced_loss\(\): `target` must hold class"):
            LF.class_balanced_loss(logits, target, samples_per_class="batch", sync=sync)
    ok = torch.tensor([0, 1, 2, 2])
    torch.testing.assert_close(
        LF.class_balanced_loss(logits, ok, samples_per_class="batch", sync="global"),
        LF.class_balanced_loss(logits, ok, samples_per_class="batch"),
        rtol=0,
        atol=0,
    )
