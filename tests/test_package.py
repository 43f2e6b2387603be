"""Package-level promises: import hygiene, registry, public API, core helpers."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest
import torch

import losslab
import losslab.functional as LF
from losslab._checks import check_choice, check_class_ids, check_float, check_range, fail
from losslab._reduce import reduce
from losslab._registry import _unregister, register
from losslab.losses.base import Loss


def test_import_pulls_no_cli_dependencies() -> None:
    code = (
        "import sys, losslab, losslab.functional\n"
        "bad = [m for m in ('typer', 'rich', 'matplotlib', 'sklearn', 'click') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_public_api_is_explicit() -> None:
    for name in losslab.__all__:
        assert hasattr(losslab, name), name
    assert LF.__all__ and all(n.endswith(("_loss", "_penalty")) for n in LF.__all__)
    for entry in losslab.entries():
        assert entry.cls.__name__ in losslab.__all__
        fn = entry.cls.function
        if fn is not None:
            assert getattr(LF, fn.__name__) is fn


def test_registry_lookup_and_aliases() -> None:
    assert losslab.lookup("mse") is losslab.MSELoss
    assert losslab.lookup("l2_error") is losslab.MSELoss
    assert "mse" in losslab.available()
    with pytest.raises(ValueError, match=r"got 'mes'. Did you mean 'mse'\?"):
        losslab.lookup("mes")
    with pytest.raises(ValueError, match=r"See `losslab list`"):
        losslab.lookup("zzzzzz")
    with pytest.raises(TypeError, match=r"`name` must be a str"):
        losslab.lookup(3)  # type: ignore[arg-type]


def test_registry_refuses_duplicates_and_bad_keys() -> None:
    class Dup(Loss):
        """dup"""

        key = "mse"

    with pytest.raises(
        ValueError, match=r"`key` must be unique; got 'mse', already used by MSELoss"
    ):
        register(Dup)

    class Bad(Loss):
        """bad"""

        key = "Not-A-Key"

    with pytest.raises(ValueError, match=r"`key` must be a lower-case identifier"):
        register(Bad)

    class Fine(Loss):
        """A test loss."""

        key = "test_only_fine"
        family = "test"

    try:
        register(Fine)
        assert losslab.lookup("test_only_fine") is Fine
    finally:
        _unregister("test_only_fine")


def test_entries_metadata() -> None:
    for e in losslab.entries():
        assert (
            e.summary
            and e.family
            and e.input_kind in ("logits", "probs", "values", "scores", "none")
        )
        assert e.to_dict()["key"] == e.key
        assert not e.summary.endswith(".")


def test_modules_hold_no_function_logic() -> None:
    """A module's forward is the base's one call to its function (penalties aside)."""
    for e in losslab.entries():
        if e.input_kind != "none" and not getattr(e.cls, "preset", False):
            assert e.cls.forward is Loss.forward, e.key
            assert "_store" in inspect.getsource(e.cls.__init__), e.key


# ------------------------------------------------------------------------------ _checks
def test_error_template() -> None:
    with pytest.raises(ValueError) as info:
        fail("focal_loss", "target", "have the same shape as `logits` (8, 3)", torch.Size([8]))
    assert (
        str(info.value)
        == "focal_loss(): `target` must have the same shape as `logits` (8, 3); got (8,)."
    )


def test_check_choice_is_type_aware() -> None:
    assert check_choice("f", "flag", True, (True, False)) is True
    with pytest.raises(ValueError, match=r"`flag` must be one of True \| False; got 1"):
        check_choice("f", "flag", 1, (True, False))
    with pytest.raises(ValueError, match=r"Did you mean 'binary'\?"):
        check_choice("f", "mode", "binaryy", ("binary", "multiclass"))


def test_check_float() -> None:
    assert check_float("f", "x", 2, low=0.0) == 2.0
    with pytest.raises(TypeError, match=r"`x` must be a real number; got bool"):
        check_float("f", "x", True)
    with pytest.raises(ValueError, match=r"`x` must be a finite number; got nan"):
        check_float("f", "x", float("nan"))
    with pytest.raises(ValueError, match=r"`x` must be in \(0, 1\); got 1.0"):
        check_float("f", "x", 1.0, low=0.0, high=1.0, low_open=True, high_open=True)
    assert check_float("f", "x", float("-inf"), allow_inf=True) == float("-inf")


def test_check_range_and_class_ids() -> None:
    with pytest.raises(
        ValueError, match=r"`t` must have values in \[0, 1\]; got 2 value\(s\) outside, e.g. 1.5"
    ):
        check_range("f", "t", torch.tensor([0.0, 1.5, -1.0]), low=0.0, high=1.0)
    check_range("f", "t", torch.tensor([0.0, 1.5]), low=0.0, high=1.0, validate=False)
    check_range(
        "f", "t", torch.tensor([0.5, 255.0]), low=0.0, high=1.0, mask=torch.tensor([True, False])
    )
    with pytest.raises(
        ValueError,
        match=r"class ids in \[0, 3\); got 1 id\(s\) outside, e.g. 255. Set ignore_index=255",
    ):
        check_class_ids(
            "f", "target", torch.tensor([0, 2, 255]), 3, ignore_index=None, validate=True
        )
    check_class_ids("f", "target", torch.tensor([0, 2, 255]), 3, ignore_index=255, validate=True)


# ------------------------------------------------------------------------------ _reduce
def test_reduce_weighted_mean_and_masks() -> None:
    loss = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    sw = torch.tensor([1.0, 3.0])
    assert reduce(loss, "mean", sample_weight=sw).item() == pytest.approx((1 + 2 + 9 + 12) / 8)
    mask = torch.tensor([[True, False], [True, True]])
    assert reduce(loss, "mean", mask=mask).item() == pytest.approx((1 + 3 + 4) / 3)
    weight = torch.tensor([[2.0, 1.0], [1.0, 0.0]])
    assert reduce(loss, "mean", weight=weight).item() == pytest.approx((2 + 2 + 3) / 4)
    none = reduce(loss, "none", mask=mask)
    assert none.tolist() == [[1.0, 0.0], [3.0, 4.0]]


def test_reduce_all_masked_is_zero_with_zero_gradient() -> None:
    x = torch.tensor([float("inf"), 1.0], requires_grad=True)
    out = reduce(x * 2, "mean", mask=torch.tensor([False, False]))
    out.backward()
    assert out.item() == 0.0 and x.grad is not None and x.grad.tolist() == [0.0, 0.0]
    y = torch.tensor([1.0, 2.0], requires_grad=True)
    out = reduce(y, "mean", sample_weight=torch.zeros(2))
    out.backward()
    assert out.item() == 0.0 and y.grad.tolist() == [0.0, 0.0]


def test_every_loss_file_is_imported_by_its_family() -> None:
    """A loss file left out of its family's __init__ would silently never register."""
    import importlib
    import pkgutil

    for family in ("regression", "classification", "segmentation", "ranking", "timeseries"):
        package = importlib.import_module(f"losslab.losses.{family}")
        for info in pkgutil.iter_modules(package.__path__):
            if not info.name.startswith("_"):
                assert f"losslab.losses.{family}.{info.name}" in sys.modules, info.name


def test_family_exports_are_complete_and_visible_to_type_checkers() -> None:
    """Each family's literal __all__ re-exports every name its loss files export, and
    ``losslab`` star-imports the families (so ``from losslab import DiceLoss`` type-checks)."""
    import importlib
    import pkgutil

    import losslab

    for family in ("regression", "classification", "segmentation", "ranking", "timeseries"):
        package = importlib.import_module(f"losslab.losses.{family}")
        for info in pkgutil.iter_modules(package.__path__):
            if info.name.startswith("_"):
                continue
            module = importlib.import_module(f"losslab.losses.{family}.{info.name}")
            losses = {
                n for n in module.__all__ if n.endswith(("_loss", "Loss", "_penalty", "Penalty"))
            }
            missing = losses - set(package.__all__)
            assert not missing, (family, info.name, missing)
            for name in losses:
                assert getattr(losslab, name) is getattr(module, name), name
