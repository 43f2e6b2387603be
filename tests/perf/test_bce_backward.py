"""Analytic backward of BCE with logits (issue 9) and the sigmoid+log kernels it shares with the
pairwise losses: exactness against float64 autograd of the plain formula, gradcheck with
extreme logits, soft targets and tensor weights, saved tensors, and torch.compile against eager."""

from __future__ import annotations

from typing import Any, Union

import pytest
import torch
import torch.nn.functional as F

from losslab._autograd._math import log_sigmoid_abs, softplus
from losslab._autograd.bce_logits import BCEWithLogitsFunction, bce_logits_elementwise
from losslab.functional import bce_with_logits_loss

EXTREMES = torch.tensor([30.0, -30.0, 1e4, -1e4, 0.0, 20.5, -20.5, 88.0, -88.0, 3.0, -0.1])


def _g(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def formula(x: torch.Tensor, t: torch.Tensor, w: Union[float, torch.Tensor, None]) -> torch.Tensor:
    """w t softplus(-x) + (1 - t) softplus(x), plain autograd in float64 (threshold far past
    where the cut matters in float64)."""
    pos = F.softplus(-x, threshold=50.0)
    if w is not None:
        pos = pos * w
    return t * pos + (1 - t) * F.softplus(x, threshold=50.0)


def _inputs(seed: int, soft: bool) -> tuple[torch.Tensor, torch.Tensor]:
    g = _g(seed)
    x = torch.cat(
        [torch.randn(4, 11, generator=g, dtype=torch.float64) * 6, EXTREMES[None].double()]
    )
    t = torch.rand(5, 11, generator=g, dtype=torch.float64)
    if not soft:
        t = (t > 0.6).double()
    return x, t


# ------------------------------------------------------------------------------ the kernels
def test_log_sigmoid_abs_is_within_a_few_ulp_everywhere() -> None:
    z = torch.cat([torch.linspace(-60, 60, 400_001), EXTREMES, torch.tensor([-1e-30, 1e-30])])
    want = F.logsigmoid(z.abs().double())  # log sigma(|z|) in float64
    m, spare = log_sigmoid_abs(z)
    assert spare.shape == z.shape and m.dtype == torch.float32
    ok = want.abs() > 1e-37  # below: float32 subnormals (sigmoid flushes to 0 there)
    rel = (m.double() - want).abs()[ok] / want.abs()[ok]
    assert rel.max().item() < 3.5e-7
    assert torch.all(m <= 0)


def test_softplus_kernel_matches_float64_and_is_exact_at_the_ends() -> None:
    z = torch.cat([torch.linspace(-80, 80, 200_001), EXTREMES])
    want = F.softplus(z.double(), threshold=50.0)
    got = softplus(z)
    ok = want > 1e-37
    assert ((got.double() - want).abs()[ok] / want[ok]).max().item() < 3.5e-7
    big = torch.tensor([17.0, 100.0, 1e4, 3e38])
    assert torch.equal(softplus(big), big)
    assert torch.all(softplus(-big[1:]) == 0)  # e^-100 is below float32's subnormals
    x = torch.randn(33, dtype=torch.float64)
    assert torch.allclose(softplus(x), F.softplus(x, threshold=50.0), rtol=1e-15, atol=0)


# ------------------------------------------------------------------------------ the Function
@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("w", [None, 1.0, 2.5, "tensor"])
def test_float32_matches_float64_autograd(soft: bool, w: Any) -> None:
    x64, t64 = _inputs(1, soft)
    w64 = torch.rand(11, generator=_g(2), dtype=torch.float64) * 3 if w == "tensor" else w
    x64.requires_grad_(True)
    t64.requires_grad_(True)
    want = formula(x64, t64, w64)
    up = torch.randn(want.shape, generator=_g(3), dtype=torch.float64)
    want_gx, want_gt = torch.autograd.grad(want, (x64, t64), up)

    x = x64.detach().float().requires_grad_(True)
    t = t64.detach().float().requires_grad_(True)
    w32 = w64.float() if isinstance(w64, torch.Tensor) else w64
    got = bce_logits_elementwise(x, t, w32)
    gx, gt = torch.autograd.grad(got, (x, t), up.float())
    # Values: relative 1e-6 (a few ulp of each term); gradients: relative 1e-5 with an
    # absolute floor of 1e-6 of the largest entry (x64 rounded to float32 moves sigma(x)).
    torch.testing.assert_close(got.double(), want.detach(), rtol=1e-6, atol=1e-30)
    for g32, g64 in ((gx, want_gx), (gt, want_gt)):
        torch.testing.assert_close(g32.double(), g64, rtol=1e-5, atol=1e-6 * g64.abs().max().item())


@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("w", [None, 0.5, "tensor"])
def test_gradcheck_of_the_function(soft: bool, w: Any) -> None:
    x, t = _inputs(4, soft)
    x = x.clamp(-40, 40)  # finite differences at 1e4 step past the kink-free region anyway
    x.requires_grad_(True)
    t.requires_grad_(True)
    if w == "tensor":
        wt = (torch.rand(11, generator=_g(5), dtype=torch.float64) + 0.5).requires_grad_(True)
        assert torch.autograd.gradcheck(
            lambda a, b, c: BCEWithLogitsFunction.apply(a, b, c), (x, t, wt)
        )
    else:
        assert torch.autograd.gradcheck(lambda a, b: BCEWithLogitsFunction.apply(a, b, w), (x, t))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_gradcheck_of_the_public_function(reduction: str) -> None:
    x, t = _inputs(6, soft=True)
    x = x.clamp(-40, 40).requires_grad_(True)
    pw = torch.rand(11, generator=_g(7), dtype=torch.float64) + 0.5
    sw = torch.rand(5, generator=_g(8), dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda a: bce_with_logits_loss(
            a, t, pos_weight=pw, label_smoothing=0.1, sample_weight=sw, reduction=reduction
        ),
        (x,),
    )


def test_extreme_logits_give_exact_values_and_gradients() -> None:
    x = EXTREMES.clone().requires_grad_(True)
    for t in (torch.zeros_like(x), torch.ones_like(x)):
        got = bce_logits_elementwise(x, t, 2.0)
        (gx,) = torch.autograd.grad(got.sum(), x)
        x64 = x.detach().double().requires_grad_(True)
        want = formula(x64, t.double(), 2.0)
        (want_gx,) = torch.autograd.grad(want.sum(), x64)
        assert torch.isfinite(got).all() and torch.isfinite(gx).all()
        ok = want.detach() > 1e-37
        assert ((got.double() - want.detach()).abs()[ok] / want.detach()[ok]).max() < 1e-6
        okg = want_gx.abs() > 1e-37
        assert ((gx.double() - want_gx).abs()[okg] / want_gx.abs()[okg]).max() < 1e-6


@pytest.mark.parametrize("w", [2.0, "per-class", "per-row"])
def test_blocks_and_strided_inputs_match_one_block(w: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """On CPU both passes run over blocks of rows: values and gradients equal one block bit for
    bit, for a float weight, a per-class view and a weight with a row per sample; permuted
    and sliced views (non-contiguous x) agree too."""
    import losslab._autograd.sigmoid_focal as sf

    g = _g(10)
    x = torch.randn(7, 5, 13, generator=g) * 8
    t = torch.rand(7, 5, 13, generator=g)
    weight: Any = w
    if w == "per-class":
        weight = torch.rand(5, 1, generator=g) + 0.5
    elif w == "per-row":
        weight = torch.rand(7, 5, 1, generator=g) + 0.5
    up = torch.randn(7, 5, 13, generator=g)

    def run(xx: torch.Tensor, tt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        xx = xx.detach().requires_grad_(True)
        out = bce_logits_elementwise(xx, tt, weight)
        (gx,) = torch.autograd.grad(out, xx, up)
        return out.detach(), gx

    whole, g_whole = run(x, t)
    # about 2 rows per block (the size scales with the intra-op threads), a ragged last one
    monkeypatch.setattr(sf, "_BLOCK_BYTES", 2 * 5 * 13 * 4 // max(1, torch.get_num_threads()))
    assert 1 <= sf._block_rows(x) <= 3
    got, g_got = run(x, t)
    torch.testing.assert_close(got, whole, rtol=0, atol=0)
    torch.testing.assert_close(g_got, g_whole, rtol=0, atol=0)
    want64 = formula(
        x.double(), t.double(), weight.double() if isinstance(weight, torch.Tensor) else weight
    )
    torch.testing.assert_close(got.double(), want64, rtol=1e-6, atol=1e-30)
    if w == 2.0:  # views: their rows are other elements, the values the same
        xp, tp = x.permute(2, 0, 1), t.permute(2, 0, 1)
        torch.testing.assert_close(bce_logits_elementwise(xp, tp, 2.0), whole.permute(2, 0, 1))
        xs, ts = x[:, ::2], t[:, ::2]
        torch.testing.assert_close(bce_logits_elementwise(xs, ts, 2.0), whole[:, ::2])


def test_scalar_and_empty_inputs() -> None:
    x = torch.tensor(-3.0, requires_grad=True)
    out = bce_logits_elementwise(x, torch.tensor(1.0), 2.0)
    assert out.shape == ()
    (gx,) = torch.autograd.grad(out, x)
    torch.testing.assert_close(out, 2.0 * F.softplus(torch.tensor(3.0)))
    torch.testing.assert_close(gx, -2.0 * torch.sigmoid(torch.tensor(3.0)))
    e = torch.empty(0, 4, requires_grad=True)
    out = bce_logits_elementwise(e, torch.empty(0, 4), None)
    assert out.shape == (0, 4)
    (ge,) = torch.autograd.grad(out.sum(), e)
    assert ge.shape == (0, 4)


def test_saves_only_its_inputs() -> None:
    x = torch.randn(64, requires_grad=True)
    t = torch.rand(64)
    w = torch.rand(64) + 0.5
    out = BCEWithLogitsFunction.apply(x, t, w)
    saved = out.grad_fn.saved_tensors
    assert len(saved) == 3
    assert {s.data_ptr() for s in saved} == {x.data_ptr(), t.data_ptr(), w.data_ptr()}


@pytest.mark.slow
def test_compile_matches_eager() -> None:
    x, t = _inputs(9, soft=True)
    x = x.float().requires_grad_(True)
    t = t.float()

    def fn(a: torch.Tensor) -> torch.Tensor:
        return bce_with_logits_loss(a, t, pos_weight=2.0, validate=False)

    eager = fn(x)
    (ge,) = torch.autograd.grad(eager, x)
    compiled = torch.compile(fn, fullgraph=True)
    got = compiled(x)
    (gc,) = torch.autograd.grad(got, x)
    torch.testing.assert_close(got, eager, rtol=1e-6, atol=0)
    torch.testing.assert_close(gc, ge, rtol=1e-5, atol=1e-7)
