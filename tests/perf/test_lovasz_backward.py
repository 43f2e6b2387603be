"""The Lovasz losses' fast path (issue 9): radix sorts and the analytic backward, every option.

Both public functions get their per-(unit, class) losses from
:class:`~losslab._autograd.lovasz.LovaszFunction`. The reference here, ``plain_per_class``,
is the pre-issue-9 code: one batched stable ``torch.sort`` of the float errors, the weighted
increments (``lovasz_increments``) under ``no_grad``, a gather and a dot, all under plain
autograd; swapping it in (monkeypatch) leaves every check, option and reduction of the public
functions unchanged, so a mismatch can only come from the Function.

Tolerances: float64 comparisons are to 1e-10 relative (rounding only: the two closed forms of
the increments differ by a few ulps). float32 gradients are compared at an absolute tolerance
of 1e-6 of the largest gradient entry: through softmax every entry is p (g - sum p g), a
difference whose rounding is set by the scale of g, not by the (possibly tiny) entry itself.
A float32 gradient is compared with a float64 one only on inputs whose float32 and float64
errors sort in the same order (checked): float32 rounding reorders near-tied errors, which
moves increments between neighbouring ranks in any float32 implementation.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable, Optional

import pytest
import torch
from torch import Tensor

import losslab.losses.segmentation.lovasz_hinge as hinge_module
import losslab.losses.segmentation.lovasz_softmax as softmax_module
from losslab._autograd import lovasz as lovasz_module
from losslab._autograd.lovasz import (
    LovaszFunction,
    _sort_keys,
    _sorted_errors,
    _Workspace,
    lovasz_increments,
    lovasz_per_class,
)
from losslab.functional import lovasz_hinge_loss, lovasz_softmax_loss

D = torch.float64


def _g(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------- plain autograd
def plain_per_class(
    kind: str,
    x: Tensor,
    *,
    target: Optional[Tensor] = None,
    probs: Optional[Tensor] = None,
    ids: Optional[Tensor] = None,
    valid: Optional[Tensor] = None,
    selected: Optional[Tensor] = None,
    pixel_weight: Optional[Tensor] = None,
    activation: Optional[str] = None,
    aggregate: str = "image",
    bounded: bool = False,
) -> tuple[Tensor, Tensor]:
    """``lovasz_per_class`` as the code read before the Function (plain autograd)."""
    if kind == "hinge":
        assert target is not None
        errors, gt, v = 1.0 - x * (2.0 * target - 1.0), target, valid
    else:
        assert probs is not None
        p = probs if selected is None else probs.index_select(1, selected)
        v = valid
        if v is not None and v.shape[1] > 1 and selected is not None:
            v = v.index_select(1, selected)
        if ids is not None:
            channels = selected if selected is not None else torch.arange(probs.shape[1])
            fg = ids.unsqueeze(1) == channels.view(1, -1, 1)
            errors, gt = torch.where(fg, 1.0 - p, p), fg.to(p.dtype)
        else:
            assert target is not None
            gt = target if selected is None else target.index_select(1, selected)
            errors = (gt - p).abs()
    w = torch.ones_like(errors) if v is None else v.to(errors.dtype).expand_as(errors)
    if pixel_weight is not None:
        w = w * pixel_weight.to(errors.dtype).reshape(-1, 1, 1)

    def units(t: Tensor) -> Tensor:
        return t if aggregate == "image" else t.transpose(0, 1).reshape(1, t.shape[1], -1)

    errors, gt, w = units(errors), units(gt), units(w)
    counted = w > 0
    with torch.no_grad():
        key = torch.where(counted, errors, torch.full_like(errors, float("-inf")))
        order = torch.sort(key, dim=-1, descending=True, stable=True).indices
        increments = lovasz_increments(gt.gather(-1, order), w.gather(-1, order))
    value = torch.where(counted, errors, torch.zeros_like(errors))
    if kind == "hinge":
        value = torch.relu(value)
    losses = (value.gather(-1, order) * increments).sum(-1)
    return losses, (gt * w).sum(-1).detach()


@pytest.fixture
def plain(monkeypatch: pytest.MonkeyPatch) -> Callable[[Callable[[], Any]], Any]:
    """Run a callable with the Lovasz core under plain autograd instead of the Function."""

    def run(fn: Callable[[], Any]) -> Any:
        with monkeypatch.context() as m:
            m.setattr(softmax_module, "lovasz_per_class", plain_per_class)
            m.setattr(hinge_module, "lovasz_per_class", plain_per_class)
            return fn()

    return run


def _value_and_grads(
    fn: Callable[..., Tensor], x: Tensor, t: Tensor, kw: dict[str, Any]
) -> tuple[Tensor, list[Optional[Tensor]]]:
    x = x.detach().clone().requires_grad_(True)
    inputs = [x]
    if t.is_floating_point():
        t = t.detach().clone().requires_grad_(True)
        inputs.append(t)
    out = fn(x, t, **kw)
    weights = torch.linspace(0.5, 1.5, out.numel(), dtype=out.dtype).reshape(out.shape)
    grads = torch.autograd.grad((out * weights).sum(), inputs, allow_unused=True)
    return out.detach(), list(grads)


def _compare(
    plain: Callable[[Callable[[], Any]], Any],
    fn: Callable[..., Tensor],
    x: Tensor,
    t: Tensor,
    kw: dict[str, Any],
    *,
    float32: bool = False,
) -> None:
    got, got_grads = _value_and_grads(fn, x, t, kw)
    want, want_grads = plain(lambda: _value_and_grads(fn, x, t, kw))
    rtol = 1e-5 if float32 else 1e-10
    torch.testing.assert_close(got, want, rtol=rtol, atol=rtol * 1e-3, msg=str(kw))
    for g, w in zip(got_grads, want_grads):
        if w is None:
            assert g is None or not g.any(), kw
            continue
        assert g is not None, kw
        scale = w.abs().max().item()
        atol = (1e-6 if float32 else 1e-13) * scale
        torch.testing.assert_close(g, w, rtol=rtol, atol=atol, msg=str(kw))


# ---------------------------------------------------------------------------- inputs
def _softmax_inputs(seed: int, shape: tuple[int, ...], ties: bool = False) -> tuple[Tensor, ...]:
    g = _g(seed)
    b, c, *spatial = shape
    x = torch.randn(*shape, generator=g, dtype=D) * 3.0
    if ties:  # a few distinct logits: many exactly tied errors
        x = torch.randint(-3, 4, shape, generator=g).to(D) / 2.0
    ids = torch.randint(0, c, (b, *spatial), generator=g)
    ids[0].view(-1)[: ids[0].numel() // 3] = 255
    if b > 2:
        ids[2] = 255  # an all-ignored image
    if b > 1:
        ids[1][ids[1] == c - 1] = 0  # a class absent from image 1
    return x, ids


SOFTMAX_OPTIONS = [
    dict(zip(("aggregate", "present_only", "classes", "sw"), values))
    for values in itertools.product(
        ("image", "batch"), (True, False), (None, [2, 0], "no_bg"), (False, True)
    )
]


def _softmax_kwargs(opt: dict[str, Any], b: int, ignore: bool) -> dict[str, Any]:
    kw: dict[str, Any] = {"aggregate": opt["aggregate"], "present_only": opt["present_only"]}
    if opt["classes"] == "no_bg":
        kw["include_background"] = False
    elif opt["classes"] is not None:
        kw["classes"] = opt["classes"]
    if ignore:
        kw["ignore_index"] = 255
    if opt["sw"]:
        kw["sample_weight"] = torch.tensor([1.0, 0.0, 2.5, 0.5][:b], dtype=D)
    kw["reduction"] = "none" if opt["aggregate"] == "image" else "mean"
    return kw


# ---------------------------------------------------------------------------- exactness
@pytest.mark.parametrize("ties", [False, True])
def test_softmax_ids_every_option_matches_plain_autograd_float64(plain: Any, ties: bool) -> None:
    x, ids = _softmax_inputs(0, (3, 4, 5, 6), ties=ties)
    clean = ids.clone()
    clean[clean == 255] = 1
    for opt in SOFTMAX_OPTIONS:
        for ignore in (False, True):
            kw = _softmax_kwargs(opt, 3, ignore)
            _compare(plain, lovasz_softmax_loss, x, ids if ignore else clean, kw)


def test_softmax_dense_targets_and_activations_match_plain_autograd(plain: Any) -> None:
    g = _g(1)
    x = torch.randn(3, 4, 5, 5, generator=g, dtype=D) * 2.0
    ml = (torch.rand(3, 4, 5, 5, generator=g, dtype=D) < 0.3).to(D)
    ml_ign = ml.clone()
    ml_ign[0, 1, :2] = 255.0
    ml_ign[1, 2] = 0.0
    onehot = torch.nn.functional.one_hot(torch.randint(0, 4, (3, 5, 5), generator=g), 4)
    onehot = onehot.permute(0, 3, 1, 2).to(D)
    probs = torch.softmax(x, 1)
    sw = torch.tensor([0.5, 2.0, 0.0], dtype=D)
    for agg, po in itertools.product(("image", "batch"), (True, False)):
        base = {"aggregate": agg, "present_only": po}
        cases: list[tuple[Tensor, Tensor, dict[str, Any]]] = [
            (x, ml, {"mode": "multilabel"}),
            (x, ml_ign, {"mode": "multilabel", "ignore_index": 255, "classes": [3, 1]}),
            (x, ml, {"mode": "multilabel", "include_background": False, "sample_weight": sw}),
            (x, onehot, {"activation": "softmax"}),
            (x, onehot, {"activation": "softmax", "classes": [1, 2], "sample_weight": sw}),
            (probs, onehot.argmax(1), {"activation": None}),
            (probs, onehot, {"activation": None, "include_background": False}),
            (x[:, :1], ml[:, :1], {"mode": "binary"}),
            (x[:, :1], ml_ign[:, 1].long().clamp_max(1), {"mode": "binary", "sample_weight": sw}),
        ]
        for xx, tt, kw in cases:
            _compare(plain, lovasz_softmax_loss, xx, tt, {**base, **kw})


def test_hinge_every_option_matches_plain_autograd(plain: Any) -> None:
    g = _g(2)
    for ties in (False, True):
        x = torch.randn(4, 1, 5, 6, generator=g, dtype=D) * 2.0
        if ties:
            x = torch.randint(-3, 4, x.shape, generator=g).to(D) / 2.0
        t = (torch.rand(4, 1, 5, 6, generator=g, dtype=D) < 0.4).to(D)
        t[1] = 0.0  # no foreground: false positives still cost
        t_ign = t.clone()
        t_ign[0, 0, :2] = 255.0
        t_ign[3] = 255.0
        ids = torch.randint(0, 2, (4, 5, 6), generator=g)
        ids[2, 0] = 255
        sw = torch.tensor([1.0, 0.0, 3.0, 0.5], dtype=D)
        variants: list[tuple[Tensor, dict[str, Any]]] = [
            (t, {}),
            (t_ign, {"ignore_index": 255}),
            (ids, {"ignore_index": 255, "sample_weight": sw}),
            (t, {"sample_weight": sw, "reduction": "sum"}),
        ]
        for agg in ("image", "batch"):
            for tt, options in variants:
                kw = {"aggregate": agg, **options}
                if agg == "image" and "reduction" not in kw:
                    kw["reduction"] = "none"
                _compare(plain, lovasz_hinge_loss, x, tt, kw)


def test_float32_matches_plain_float32_on_long_rows(plain: Any) -> None:
    """Rows of >= 32768 pixels (one radix sort per row) and short rows (one packed sort)."""
    g = _g(3)
    x = torch.randn(2, 3, 128, 128, generator=g) * 2.0
    ids = torch.randint(0, 3, (2, 128, 128), generator=g)
    ids[0, :5] = 255
    for agg in ("batch", "image"):  # rows of 32768 and of 16384 pixels
        kw = {"aggregate": agg, "ignore_index": 255, "present_only": False}
        _compare(plain, lovasz_softmax_loss, x, ids, kw, float32=True)
    xb = torch.randn(1, 1, 256, 160, generator=g) * 2.0
    tb = (torch.rand(1, 1, 256, 160, generator=g) < 0.3).float()
    tb[0, 0, :3] = 255.0
    _compare(plain, lovasz_hinge_loss, xb, tb, {"ignore_index": 255}, float32=True)


def test_float32_gradient_matches_float64_formula_when_orders_agree() -> None:
    """Analytic float32 gradient vs float64 autograd of the plain formula, same sort order."""
    g = _g(4)
    x = torch.randn(2, 3, 40, 40, generator=g, dtype=D) * 2.0
    ids = torch.randint(0, 3, (2, 40, 40), generator=g)
    p64, p32 = torch.softmax(x, 1), torch.softmax(x.float(), 1)
    fg = ids.unsqueeze(1) == torch.arange(3).view(1, 3, 1, 1)
    e64 = torch.where(fg, 1 - p64, p64).reshape(6, -1)
    e32 = torch.where(fg, 1 - p32, p32).reshape(6, -1)
    for a, b in ((e64, e32), (e64.reshape(2, 3, -1).transpose(0, 1).reshape(3, -1), None)):
        if b is None:
            b = e32.reshape(2, 3, -1).transpose(0, 1).reshape(3, -1)
        orders = [torch.sort(t, dim=-1, descending=True, stable=True).indices for t in (a, b)]
        assert torch.equal(*orders), "precondition: the float32 and float64 orders agree"
    for agg in ("image", "batch"):
        x64 = x.clone().requires_grad_(True)
        x32 = x.float().requires_grad_(True)
        with pytest.MonkeyPatch.context() as m:
            m.setattr(softmax_module, "lovasz_per_class", plain_per_class)
            want = lovasz_softmax_loss(x64, ids, aggregate=agg)
        got = lovasz_softmax_loss(x32, ids, aggregate=agg)
        (gw,) = torch.autograd.grad(want, x64)
        (gg,) = torch.autograd.grad(got, x32)
        assert abs(got.item() - want.item()) <= 1e-6 * want.item()
        torch.testing.assert_close(gg.double(), gw, rtol=1e-5, atol=1e-6 * gw.abs().max().item())


# ---------------------------------------------------------------------------- gradcheck
def _gradcheck_inputs() -> list[tuple[str, dict[str, Any]]]:
    g = _g(5)
    x = torch.randn(2, 3, 3, 4, generator=g, dtype=D) * 2.0
    extreme = torch.tensor([30.0, -30.0, 1e4, -1e4, 0.5, 15.0], dtype=D)
    x_ext = extreme[torch.randperm(6, generator=g)].repeat(12)[:72].reshape(2, 3, 3, 4)
    x_ext = x_ext + 0.01 * torch.randn(2, 3, 3, 4, generator=g, dtype=D)  # no exact ties
    ids = torch.randint(0, 3, (2, 3, 4), generator=g)
    ids[0, 0] = 255
    t = (torch.rand(2, 3, 3, 4, generator=g, dtype=D) < 0.4).to(D)
    sw = torch.tensor([0.7, 1.8], dtype=D)
    return [
        ("ids", {"x": x, "ids": ids, "act": "softmax", "valid": True}),
        ("ids", {"x": x_ext, "ids": ids, "act": "softmax", "valid": True, "sel": [2, 0]}),
        ("ids", {"x": x, "ids": ids, "act": "softmax", "agg": "batch", "pw": sw, "valid": True}),
        ("dense", {"x": x, "t": t, "act": "sigmoid"}),
        ("dense", {"x": x_ext, "t": t, "act": "sigmoid", "agg": "batch", "pw": sw}),
        ("dense", {"x": x, "t": t, "act": "softmax", "sel": [1]}),
        ("hinge", {"x": x[:, :1], "t": t[:, :1]}),
        ("hinge", {"x": x_ext[:, :1], "t": t[:, :1], "agg": "batch", "pw": sw}),
    ]


@pytest.mark.parametrize("index", range(8))
def test_gradcheck_function(index: int) -> None:
    kind, spec = _gradcheck_inputs()[index]
    x = spec["x"].reshape(2, spec["x"].shape[1], -1).clone().requires_grad_(True)
    # The target's gradient is autograd's of the plain formula (the errors' term; the
    # increments are constants there as here), not d/dt of the loss: compared with plain
    # autograd above, not gradchecked.
    t = spec.get("t")
    if t is not None:
        t = t.reshape(2, t.shape[1], -1)
    ids = spec.get("ids")
    valid = None
    if ids is not None:
        ids = ids.reshape(2, -1)
        valid = (ids != 255).unsqueeze(1) if spec.get("valid") else None
        ids = torch.where(ids == 255, torch.zeros_like(ids), ids)
    sel = None if "sel" not in spec else torch.tensor(spec["sel"])
    act = spec.get("act")

    def f(xx: Tensor, tt: Optional[Tensor]) -> Tensor:
        probs = None
        if kind != "hinge":
            probs = torch.softmax(xx, 1) if act == "softmax" else torch.sigmoid(xx)
        losses, _ = lovasz_per_class(
            kind,
            xx,
            target=tt,
            probs=probs,
            ids=ids,
            valid=valid,
            selected=sel,
            pixel_weight=spec.get("pw"),
            activation=act,
            aggregate=spec.get("agg", "image"),
        )
        return losses

    assert torch.autograd.gradcheck(lambda xx: f(xx, t), (x,), eps=1e-6, atol=1e-8)


def test_gradcheck_public_functions() -> None:
    g = _g(6)
    x = (torch.randn(2, 3, 3, 3, generator=g, dtype=D) * 2.0).requires_grad_(True)
    ids = torch.randint(0, 3, (2, 3, 3), generator=g)
    ids[1, 0] = 255
    # "image": sample weights weight the mean over images (differentiable); "batch": they are
    # pixel weights of the Jaccard loss, constants of the increments (no gradient, as before).
    for agg in ("image", "batch"):
        sw = torch.tensor([0.4, 1.6], dtype=D, requires_grad=agg == "image")
        assert torch.autograd.gradcheck(
            lambda a, w, agg=agg: lovasz_softmax_loss(
                a, ids, ignore_index=255, aggregate=agg, sample_weight=w
            ),
            (x, sw),
        )
        xb = x[:, :1].detach().clone().requires_grad_(True)
        tb = (torch.rand(2, 1, 3, 3, generator=g, dtype=D) < 0.5).to(D)
        assert torch.autograd.gradcheck(
            lambda a, agg=agg, tb=tb: lovasz_hinge_loss(a, tb, aggregate=agg), (xb,)
        )


# ---------------------------------------------------------------------------- the sort
def test_integer_keys_sort_like_a_stable_float_sort() -> None:
    """Every key layout gives the permutation of a stable descending float sort; ignored last.

    Rows of >= 32768 (one int32 radix sort each), short rows with 30-bit keys (groups of
    four as int32) and with 31-bit keys (all rows as int64), and the float fallback.
    """
    g = _g(7)
    for rows, m in ((1, 40000), (3, 33000), (6, 9000), (5, 700), (1, 9)):
        e = torch.randint(0, 50, (rows, m), generator=g).float() / 49.0  # many ties, 0 and 1
        invalid = torch.rand(rows, m, generator=g) < 0.2
        invalid[-1] = True  # an all-ignored row
        key = e.masked_fill(invalid, float("-inf"))
        want = torch.sort(key, dim=-1, descending=True, stable=True)
        want_values = want.values.clamp_min(0.0)
        for int_keys, in_place, narrow in itertools.product((True, False), repeat=3):
            if in_place and not int_keys:
                continue
            ws = _Workspace(rows * m, torch.float32, e.device, fresh=not in_place)
            values, perm = _sorted_errors(
                e.clone(), invalid, lambda t: t, int_keys, in_place, narrow, ws
            )
            assert torch.equal(perm, want.indices), (rows, m, int_keys, in_place, narrow)
            torch.testing.assert_close(values, want_values, rtol=0, atol=0)
    # NaN errors sort first (as torch's descending sort puts them) and stay NaN.
    e = torch.rand(2, 50, generator=g)
    e[0, 7] = float("nan")
    ws = _Workspace(100, torch.float32, e.device, fresh=False)
    values, perm = _sorted_errors(e.clone(), None, lambda t: t, True, True, False, ws)
    assert perm[0, 0].item() == 7 and torch.isnan(values[0, 0])


def test_packed_and_per_row_sorts_agree() -> None:
    g = _g(8)
    keys = torch.randint(-(2**31), 2**31 - 1, (4, 1000), generator=g, dtype=torch.int64)
    keys = keys.to(torch.int32)
    keys[:, ::7] = keys[:, :1]  # ties
    for in_place in (True, False):
        ws = _Workspace(4000, torch.float32, keys.device, fresh=not in_place)
        got_perm, got_bits = _sort_keys(keys.clone(), ws, False, in_place)
        assert got_bits is not None
        for r in range(4):
            want = torch.sort(keys[r].long(), stable=True)
            assert torch.equal(got_perm[r], want.indices)
            assert torch.equal(got_bits[r].long(), ~want.values)


# ---------------------------------------------------------------------------- behaviour
def test_no_double_backward_and_forward_only_skips_the_slopes() -> None:
    assert LovaszFunction.supports_double_backward is False
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 4, 4, generator=g).requires_grad_()
    ids = torch.randint(0, 3, (2, 4, 4), generator=g)
    loss = lovasz_softmax_loss(x, ids)
    (grad,) = torch.autograd.grad(loss, x, create_graph=True)
    # The gradient carries no graph back to x through the Function: autograd refuses, with
    # one message or another depending on what else the graph holds.
    refused = r"once_differentiable|does not require grad|not have been used in the graph"
    with pytest.raises(RuntimeError, match=refused):
        torch.autograd.grad(grad.sum(), x)
    with torch.no_grad():
        assert lovasz_softmax_loss(x, ids).item() == pytest.approx(loss.item(), rel=1e-6)


def test_saves_one_float_per_pixel_and_class() -> None:
    """What the graph holds between forward and backward: the slopes and the probabilities."""
    x = torch.randn(2, 3, 64, 64, requires_grad=True)
    ids = torch.randint(0, 3, (2, 64, 64))
    loss = lovasz_softmax_loss(x, ids)
    node = loss.grad_fn
    seen: set[int] = set()
    saved = 0
    stack = [node]
    while stack:
        n = stack.pop()
        if n is None or id(n) in seen:
            continue
        seen.add(id(n))
        if "LovaszFunction" in type(n).__name__:
            tensors = n.saved_tensors  # type: ignore[attr-defined]
            saved = sum(t.numel() * t.element_size() for t in tensors if t is not None)
        stack.extend(f for f, _ in n.next_functions)
    input_bytes = x.numel() * x.element_size()
    assert 0 < saved <= 2 * input_bytes + 64  # slopes (1x) + the softmax's probabilities (1x)


def test_public_functions_use_the_function() -> None:
    assert softmax_module.lovasz_per_class is lovasz_module.lovasz_per_class
    assert hinge_module.lovasz_per_class is lovasz_module.lovasz_per_class


# ---------------------------------------------------------------------------- torch.compile
@pytest.mark.slow
def test_compiled_matches_eager() -> None:
    """torch.compile traces the Function (float sort path): same values and gradients."""
    g = _g(9)
    x = torch.randn(2, 3, 6, 6, generator=g) * 2.0
    ids = torch.randint(0, 3, (2, 6, 6), generator=g)
    ids[0, 0] = 255
    ml = (torch.rand(2, 3, 6, 6, generator=g) < 0.4).float()
    t = (torch.rand(2, 1, 6, 6, generator=g) < 0.4).float()
    sw = torch.tensor([0.5, 1.5])

    def all_losses(a: Tensor) -> Tensor:
        return (
            lovasz_softmax_loss(a, ids, ignore_index=255, validate=False)
            + lovasz_softmax_loss(a, ids, aggregate="batch", sample_weight=sw, validate=False)
            + lovasz_softmax_loss(a, ml, mode="multilabel", classes=[2, 1], validate=False)
            + lovasz_hinge_loss(a[:, :1], t, aggregate="batch", validate=False)
        )

    compiled = torch.compile(all_losses)
    results = []
    for f in (compiled, all_losses):
        a = x.clone().requires_grad_(True)
        value = f(a)
        (grad,) = torch.autograd.grad(value, a)
        results.append((value, grad))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(results[0][1], results[1][1], rtol=1e-5, atol=1e-8)
