"""The overlap sums' analytic backward (issue 9): exact against plain autograd, every option.

Every overlap loss (Dice, Jaccard, Tversky, focal Tversky, log-Dice, log-cosh Dice,
generalized Dice, the presets) gets its per-(image, class) sums from
:class:`~losslab._autograd.overlap_stats.OverlapSumsFunction`. References here are plain
autograd of the same sums (``overlap_sums_plain`` of the activated probabilities, written
out-of-place), so a mismatch can only come from the analytic backward.

Tolerances: float64 comparisons are to 1e-10 relative (rounding only). float32 gradients are
compared with the float64 ones at an absolute tolerance of 2e-6 of the largest gradient entry:
the sums are float32 accumulations over N positions (relative error ~1e-7), and through
softmax every entry is p (v - sum p v), a difference whose error is set by the scale of v, not
by the (possibly tiny or zero) entry itself. Plain autograd of the formula in float32 is off
by 0.7e-6 to 0.8e-6 of the largest entry on the same inputs, the Function by 0.6e-6 to 0.8e-6
(a BLAS other than MKL may round the C-term sums differently, hence the factor 2).
"""

from __future__ import annotations

import itertools
from typing import Any, Callable, Optional

import pytest
import torch
from torch import Tensor

import losslab
import losslab._autograd.overlap_stats as function_module
import losslab.losses.segmentation._overlap as overlap_module
from losslab._autograd.overlap_stats import (
    OverlapSumsFunction,
    activate,
    overlap_sums,
    overlap_sums_plain,
)
from losslab.functional import (
    dice_loss,
    focal_tversky_loss,
    generalized_dice_loss,
    jaccard_loss,
    log_cosh_dice_loss,
    log_dice_loss,
    tversky_loss,
)

LOSSES: dict[str, Callable[..., Tensor]] = {
    "dice": dice_loss,
    "jaccard": jaccard_loss,
    "tversky": tversky_loss,
    "focal_tversky": focal_tversky_loss,
    "log_dice": log_dice_loss,
    "log_cosh_dice": log_cosh_dice_loss,
    "generalized_dice": generalized_dice_loss,
}


def _g(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _plain_sums(
    x: Tensor,
    ids: Optional[Tensor],
    t: Optional[Tensor],
    valid: Optional[Tensor],
    *,
    activation: Optional[str],
    squared: bool = False,
    probs: Optional[Tensor] = None,
) -> Tensor:
    """The fast path's stand-in: the same sums under plain autograd (the pre-issue-9 code)."""
    return overlap_sums_plain(activate(x, activation), ids, t, valid, squared)


@pytest.fixture
def plain_autograd(monkeypatch: pytest.MonkeyPatch) -> Callable[[Callable[[], Any]], Any]:
    """Run a callable with the overlap sums under plain autograd instead of the Function."""

    def run(fn: Callable[[], Any]) -> Any:
        with monkeypatch.context() as m:
            m.setattr(overlap_module, "overlap_sums", _plain_sums)
            return fn()

    return run


# ------------------------------------------------------------------ the Function itself

ACTIVATIONS = ("softmax", "sigmoid", None)
MASKS = (None, "position", "element")


def _function_inputs(
    activation: Optional[str], kind: str, mask: Optional[str], seed: int = 0, scale: float = 3.0
) -> tuple[Tensor, Optional[Tensor], Optional[Tensor], Optional[Tensor]]:
    g = _g(seed)
    b, c, n = 2, 3, 7
    if activation is None:
        x = torch.rand(b, c, n, generator=g, dtype=torch.float64)
    else:
        x = torch.randn(b, c, n, generator=g, dtype=torch.float64) * scale
    ids = torch.randint(0, c, (b, n), generator=g) if kind == "ids" else None
    t = torch.rand(b, c, n, generator=g, dtype=torch.float64) if kind == "dense" else None
    valid = None
    if mask == "position":
        valid = torch.rand(b, 1, n, generator=g) > 0.3
    elif mask == "element":
        valid = torch.rand(b, c, n, generator=g) > 0.3
    return x, ids, t, valid


CONFIGS = [
    (act, kind, mask, sq)
    for act, kind, mask, sq in itertools.product(
        ACTIVATIONS, ("ids", "dense"), MASKS, (False, True)
    )
    if not (kind == "ids" and mask == "element")  # class ids mask whole positions
]


@pytest.fixture(params=["whole", "per_image"])
def slicing(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The batch in one slice (small inputs), or one image per slice (large images)."""
    if request.param == "per_image":
        monkeypatch.setattr(function_module, "_SLICE", 1)
    return str(request.param)


@pytest.mark.parametrize("activation,kind,mask,squared", CONFIGS)
def test_function_matches_plain_autograd(
    activation: Optional[str], kind: str, mask: Optional[str], squared: bool, slicing: str
) -> None:
    x, ids, t, valid = _function_inputs(activation, kind, mask)
    x.requires_grad_()
    inputs = [x] if t is None else [x, t.requires_grad_()]
    weights = torch.randn(5 if squared else 3, 2, 3, generator=_g(1), dtype=torch.float64)
    got = overlap_sums(x, ids, t, valid, activation=activation, squared=squared)
    want = overlap_sums_plain(activate(x, activation), ids, t, valid, squared)
    assert got.shape == (5 if squared else 3, 2, 3)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    got_grads = torch.autograd.grad((got * weights).sum(), inputs)
    want_grads = torch.autograd.grad((want * weights).sum(), inputs)
    for a, b in zip(got_grads, want_grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("n", [1, 15, 16, 37, 300])
def test_class_id_sums_equal_the_one_hot_formula(n: int, slicing: str) -> None:
    """Independent of the code under test: one-hot sums, label runs longer than the lanes."""
    g = _g(20 + n)
    x = torch.randn(3, 4, n, generator=g, dtype=torch.float64) * 3
    ids = torch.randint(0, 4, (3, (n + 19) // 20), generator=g).repeat_interleave(20, 1)[:, :n]
    valid = torch.rand(3, 1, n, generator=g) > 0.2
    p = torch.softmax(x, 1) * valid
    onehot = torch.nn.functional.one_hot(ids, 4).permute(0, 2, 1).to(p.dtype) * valid
    want = torch.stack(
        [(p * onehot).sum(-1), p.sum(-1), onehot.sum(-1), (p * p).sum(-1), onehot.sum(-1)]
    )
    got = overlap_sums(x, ids, None, valid, activation="softmax", squared=True)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(
        overlap_sums_plain(torch.softmax(x, 1), ids, None, valid, True), want
    )


@pytest.mark.parametrize("activation,kind,mask,squared", CONFIGS)
def test_function_gradcheck(
    activation: Optional[str], kind: str, mask: Optional[str], squared: bool
) -> None:
    x, ids, t, valid = _function_inputs(activation, kind, mask, seed=2)
    inputs: tuple[Tensor, ...] = (x.requires_grad_(),)
    if t is not None:
        inputs += (t.requires_grad_(),)

    def fn(x: Tensor, t: Optional[Tensor] = None) -> Tensor:
        return overlap_sums(x, ids, t, valid, activation=activation, squared=squared)

    assert torch.autograd.gradcheck(fn, inputs, fast_mode=True)


@pytest.mark.parametrize("activation", ["softmax", "sigmoid"])
@pytest.mark.parametrize("scale", [30.0, 1e4])
@pytest.mark.parametrize("kind", ["ids", "dense"])
def test_function_extreme_logits(activation: str, scale: float, kind: str) -> None:
    """Saturated activations: finite, exact against autograd, and gradcheck passes."""
    x, ids, t, valid = _function_inputs(activation, kind, "position", seed=3)
    x = (torch.sign(x) * scale + x).requires_grad_()  # |x| ~ scale, no exact ties
    got = overlap_sums(x, ids, t, valid, activation=activation, squared=True)
    weights = torch.randn(got.shape, generator=_g(4), dtype=torch.float64)
    (grad,) = torch.autograd.grad((got * weights).sum(), x)
    want = overlap_sums_plain(activate(x, activation), ids, t, valid, True)
    (want_grad,) = torch.autograd.grad((want * weights).sum(), x)
    assert torch.isfinite(grad).all()
    # Saturated entries are differences of rounded terms: absolute, at the gradient's scale.
    torch.testing.assert_close(grad, want_grad, rtol=0, atol=1e-12 * want_grad.abs().max())
    assert torch.autograd.gradcheck(
        lambda x: overlap_sums(x, ids, t, valid, activation=activation), (x,), fast_mode=True
    )


def test_function_given_probabilities_are_constants() -> None:
    """probs spare the forward one activation; the gradient still goes to the logits."""
    x, ids, _, valid = _function_inputs("softmax", "ids", "position", seed=5)
    x.requires_grad_()
    p = torch.softmax(x, 1)
    got = overlap_sums(x, ids, None, valid, activation="softmax", probs=p)
    want = overlap_sums(x, ids, None, valid, activation="softmax")
    torch.testing.assert_close(got, want)
    (g1,) = torch.autograd.grad(got.sum(), x)
    (g2,) = torch.autograd.grad(want.sum(), x)
    torch.testing.assert_close(g1, g2)


def test_function_is_once_differentiable_and_can_backward_twice() -> None:
    assert OverlapSumsFunction.supports_double_backward is False
    for activation in ACTIVATIONS:  # None: backward reads x itself, never writes it
        x, ids, _, _ = _function_inputs(activation, "ids", None, seed=6)
        x.requires_grad_()
        out = overlap_sums(x, ids, None, None, activation=activation, squared=True).sum()
        (g1,) = torch.autograd.grad(out, x, retain_graph=True)
        (g2,) = torch.autograd.grad(out, x)
        torch.testing.assert_close(g1, g2, rtol=0, atol=0)
    out = overlap_sums(x, ids, None, None, activation="softmax").pow(2).sum()
    (g,) = torch.autograd.grad(out, x, create_graph=True)
    with pytest.raises(RuntimeError):  # its gradient carries no graph
        torch.autograd.grad(g.sum(), x)


@pytest.mark.parametrize("mask", [None, "position"])
@pytest.mark.parametrize("squared", [False, True])
def test_kept_probabilities_give_the_recomputed_gradient(
    mask: Optional[str], squared: bool, slicing: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Class ids through a softmax: the backward writes the gradient over the forward's p~
    (no softmax recomputed, no new gradient buffer). It equals the recomputing backward
    bit for bit, and a second backward (retain_graph) recomputes from x."""
    calls: list[int] = []
    kept_fn = function_module._softmax_grad_ids_kept

    def counting(*args: Any) -> Any:
        calls.append(1)
        return kept_fn(*args)

    monkeypatch.setattr(function_module, "_softmax_grad_ids_kept", counting)
    x, ids, _, valid = _function_inputs("softmax", "ids", mask, seed=11)
    x.requires_grad_()
    out = overlap_sums(x, ids, None, valid, activation="softmax", squared=squared)
    up = torch.randn(out.shape, generator=_g(12), dtype=torch.float64)
    (g1,) = torch.autograd.grad(out, x, up, retain_graph=True)
    assert calls == [1]
    (g2,) = torch.autograd.grad(out, x, up)  # the kept buffer is gone: recomputed
    assert calls == [1]
    torch.testing.assert_close(g1, g2, rtol=0, atol=0)
    want = torch.autograd.grad(
        (overlap_sums_plain(torch.softmax(x, 1), ids, None, valid, squared) * up).sum(), x
    )[0]
    torch.testing.assert_close(g1, want, rtol=1e-12, atol=1e-14)


def test_no_probabilities_kept_without_a_gradient_or_under_given_probs() -> None:
    """The p~ buffer is allocated only on the path that consumes it."""
    x, ids, _, _ = _function_inputs("softmax", "ids", None, seed=13)
    x.requires_grad_()
    out = overlap_sums(x, ids, None, None, activation="softmax")
    assert out.grad_fn is not None and isinstance(getattr(out.grad_fn, "probs", None), Tensor)
    given = overlap_sums(x, ids, None, None, activation="softmax", probs=torch.softmax(x, 1))
    assert getattr(given.grad_fn, "probs", "missing") is None
    dense = overlap_sums(x, None, torch.rand_like(x), None, activation="softmax")
    assert getattr(dense.grad_fn, "probs", "missing") is None


# ------------------------------------------------------------------ the public losses

OPTION_SETS: list[dict[str, Any]] = [
    {},
    {"ignore_index": 255},
    {"aggregate": "batch"},
    {"classes": [1, 2], "empty": "skip"},
    {"include_background": False, "empty": "zero", "class_weight": [1.0, 2.0, 0.5, 1.0]},
    {"smooth": 0.0, "aggregate": "batch", "sample_weight": "sw"},
    {"sample_weight": "sw", "ignore_index": 255, "empty": "skip"},
]


def _ids_case(seed: int, b: int = 3, c: int = 4, h: int = 5, w: int = 6) -> tuple[Tensor, Tensor]:
    g = _g(seed)
    x = torch.randn(b, c, h, w, generator=g, dtype=torch.float64) * 2.0
    y = torch.randint(0, c, (b, h, w), generator=g)
    y[0, 0, :3] = 255
    y[1] = torch.where(y[1] == 3, torch.zeros_like(y[1]), y[1])  # class 3 empty in image 1
    return x, y


def _kwargs(name: str, options: dict[str, Any], b: int) -> dict[str, Any]:
    kw = dict(options)
    if kw.get("sample_weight") == "sw":
        kw["sample_weight"] = torch.linspace(0.5, 2.0, b, dtype=torch.float64)
    if name == "generalized_dice":
        kw.pop("class_weight", None)
        if kw.get("empty") == "zero":
            kw["empty"] = "ratio"
    return kw


@pytest.mark.parametrize("name", list(LOSSES))
@pytest.mark.parametrize("options", OPTION_SETS, ids=lambda o: ",".join(o) or "default")
def test_losses_match_plain_autograd_multiclass_ids(
    name: str, options: dict[str, Any], plain_autograd: Callable[..., Any], slicing: str
) -> None:
    x, y = _ids_case(10)
    if "ignore_index" not in options:
        y = y.clamp_max(3)
    kw = _kwargs(name, options, x.shape[0])
    fn = LOSSES[name]
    x.requires_grad_()

    def value_and_grad() -> tuple[Tensor, Tensor]:
        value = fn(x, y, mode="multiclass", **kw)
        (grad,) = torch.autograd.grad(value, x)
        return value, grad

    got = value_and_grad()
    want = plain_autograd(value_and_grad)
    torch.testing.assert_close(got[0], want[0], rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(got[1], want[1], rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("name", list(LOSSES))
@pytest.mark.parametrize(
    "mode,activation,squared",
    [
        ("binary", "auto", False),
        ("binary", None, True),
        ("multilabel", "auto", True),
        ("multilabel", None, False),
        ("multiclass", "auto", True),
        ("multiclass", "sigmoid", False),
    ],
)
def test_losses_dense_targets_match_plain_autograd(
    name: str,
    mode: str,
    activation: Optional[str],
    squared: bool,
    plain_autograd: Callable[..., Any],
) -> None:
    """Dense soft targets get a gradient, as under plain autograd; ignore_index masks both."""
    g = _g(11)
    c = 1 if mode == "binary" else 3
    x = torch.randn(2, c, 4, 5, generator=g, dtype=torch.float64) * 2.0
    if activation is None:
        x = torch.sigmoid(x)
    t = torch.rand(2, c, 4, 5, generator=g, dtype=torch.float64)
    kw: dict[str, Any] = {"mode": mode, "activation": activation}
    if mode != "multiclass":
        t[0, 0, 0, :2] = 7.0  # ignored elementwise
        kw["ignore_index"] = 7
    if squared and name == "dice":
        kw["squared"] = True
    x.requires_grad_()
    t.requires_grad_()
    fn = LOSSES[name]

    def value_and_grads() -> tuple[Tensor, ...]:
        value = fn(x, t, **kw)
        return (value, *torch.autograd.grad(value, (x, t)))

    got = value_and_grads()
    want = plain_autograd(value_and_grads)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-14)
    assert got[2].abs().sum() > 0
    if mode != "multiclass":
        assert (got[2][0, 0, 0, :2] == 0).all()


@pytest.mark.parametrize("name", list(LOSSES))
def test_losses_gradcheck_with_every_option(name: str) -> None:
    """float64 gradcheck wrt logits and a soft target, masks, weights, extremes included.

    Fast mode (random projections of the Jacobian): the exact comparisons with plain autograd
    above pin every entry; this checks the whole pipeline against finite differences.
    """
    fn = LOSSES[name]
    x, y = _ids_case(12, b=2, c=3, h=3, w=4)
    x[0, :, 1, 1] = torch.tensor([30.0, -30.0, 1e4])  # a saturated softmax
    x.requires_grad_()
    sw = torch.tensor([0.5, 2.0], dtype=torch.float64)
    extra = {} if name == "generalized_dice" else {"class_weight": [1.0, 2.0, 0.5]}
    assert torch.autograd.gradcheck(
        lambda x: fn(
            x, y, mode="multiclass", ignore_index=255, sample_weight=sw, empty="skip", **extra
        ),
        (x,),
        fast_mode=True,
    )
    t = torch.rand(2, 3, 3, 4, generator=_g(13), dtype=torch.float64).requires_grad_()
    xm = (torch.randn(2, 3, 3, 4, generator=_g(14), dtype=torch.float64) * 3).requires_grad_()
    if name == "generalized_dice":  # its volume weights are detached: constants of the target
        t.requires_grad_(False)
    assert torch.autograd.gradcheck(
        lambda x, t: fn(x, t, mode="multilabel", aggregate="batch", sample_weight=sw),
        (xm, t),
        fast_mode=True,
    )


@pytest.mark.parametrize("name", ["dice", "jaccard", "tversky", "focal_tversky"])
def test_float32_gradient_matches_float64(name: str, slicing: str) -> None:
    """float32 within 2e-6 of the largest float64 gradient entry (see the module docstring)."""
    g = _g(15)
    x = torch.randn(4, 5, 32, 32, generator=g) * 3.0
    y = torch.randint(0, 5, (4, 32, 32), generator=g)
    fn = LOSSES[name]
    x32 = x.clone().requires_grad_()
    x64 = x.double().requires_grad_()
    (g32,) = torch.autograd.grad(fn(x32, y, mode="multiclass", smooth=1e-5), x32)
    (g64,) = torch.autograd.grad(fn(x64, y, mode="multiclass", smooth=1e-5), x64)
    torch.testing.assert_close(g32.double(), g64, rtol=0, atol=2e-6 * g64.abs().max().item())


def test_half_logits_get_a_half_gradient() -> None:
    g = _g(16)
    x = (torch.randn(2, 3, 8, 8, generator=g) * 2).half().requires_grad_()
    y = torch.randint(0, 3, (2, 8, 8), generator=g)
    loss = dice_loss(x, y, mode="multiclass")
    (grad,) = torch.autograd.grad(loss, x)
    assert loss.dtype == torch.float16 and grad.dtype == torch.float16
    x32 = x.detach().float().requires_grad_()
    (want,) = torch.autograd.grad(dice_loss(x32, y, mode="multiclass"), x32)
    torch.testing.assert_close(grad.float(), want, rtol=0, atol=1e-3 * want.abs().max().item())


def test_presets_and_modules_take_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """One shared path: every overlap loss and preset calls the Function once per call."""
    calls = []
    original = OverlapSumsFunction.apply

    def counting(*args: Any) -> Any:
        calls.append(args[5])
        return original(*args)

    monkeypatch.setattr(OverlapSumsFunction, "apply", counting)
    g = _g(17)
    x = torch.randn(2, 3, 4, 4, generator=g, requires_grad=True)
    y = torch.randint(0, 3, (2, 4, 4), generator=g)
    xb = torch.randn(2, 1, 4, 4, generator=g, requires_grad=True)
    yb = (torch.rand(2, 1, 4, 4, generator=g) > 0.5).float()
    for name in LOSSES:
        losslab.lookup(name)(mode="multiclass")(x, y).backward()
    losslab.CEDiceLoss()(x, y).backward()
    losslab.BCEDiceLoss()(xb, yb).backward()
    losslab.FocalDiceLoss()(xb, yb).backward()
    assert calls == ["softmax"] * (len(LOSSES) + 1) + ["sigmoid"] * 2


def test_no_gradient_no_function(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a gradient to compute (inference, metrics) the sums are taken directly."""

    def refuse(*args: Any) -> Any:
        raise AssertionError("Function used without gradients")

    monkeypatch.setattr(OverlapSumsFunction, "apply", refuse)
    g = _g(18)
    x = torch.randn(2, 3, 4, 4, generator=g)
    y = torch.randint(0, 3, (2, 4, 4), generator=g)
    assert torch.isfinite(dice_loss(x, y, mode="multiclass"))
    with torch.no_grad():
        assert torch.isfinite(dice_loss(x.requires_grad_(), y, mode="multiclass"))


# ------------------------------------------------------------------ torch.compile


@pytest.mark.slow
def test_compiled_matches_eager() -> None:
    """torch.compile traces the Function: same values and gradients (ids, masks, dense)."""
    g = _g(19)
    x = torch.randn(2, 4, 6, 5, generator=g)
    y = torch.randint(0, 4, (2, 6, 5), generator=g)
    y[0, 0, :2] = 255
    xb = torch.randn(2, 1, 6, 5, generator=g)
    tb = torch.rand(2, 1, 6, 5, generator=g)

    def all_losses(x: Tensor, xb: Tensor, tb: Tensor) -> Tensor:
        kw: dict[str, Any] = {"mode": "multiclass", "ignore_index": 255, "validate": False}
        return (
            dice_loss(x, y, **kw)
            + dice_loss(x, y, squared=True, aggregate="batch", **kw)
            + jaccard_loss(x, y, **kw)
            + tversky_loss(x, y, alpha=0.3, beta=0.7, **kw)
            + focal_tversky_loss(x, y, **kw)
            + dice_loss(xb, tb, mode="binary", validate=False)
        )

    compiled = torch.compile(all_losses)
    results = []
    for f in (compiled, all_losses):
        args = [a.clone().requires_grad_() for a in (x, xb, tb)]
        value = f(*args)
        results.append((value, *torch.autograd.grad(value, args)))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
