"""GAN gradient penalties: closed forms from linear and quadratic critics, double backward,
mixed precision with a GradScaler, input hygiene and error messages."""

from __future__ import annotations

import copy
import functools
import inspect
import pickle

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call

from losslab.losses.adversarial import (
    DRAGANPenalty,
    GradientPenalty,
    R1Penalty,
    R2Penalty,
    dragan_penalty,
    gradient_penalty,
    r1_penalty,
    r2_penalty,
)

F64 = torch.float64
SAMPLE_SHAPES = [(), (5,), (2, 3), (2, 2, 3), (1, 2, 2, 2)]  # inputs of rank 1 .. 5
B = 4


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _data(shape: tuple[int, ...], seed: int = 0, dtype: torch.dtype = F64) -> torch.Tensor:
    return torch.randn((B, *shape), generator=_gen(seed), dtype=dtype)


def _exact_w(shape: tuple[int, ...]) -> torch.Tensor:
    """A weight of one sample's shape with norm exactly 5: entries 1, -2, 2, 4 (or 5 alone)."""
    w = torch.zeros(shape, dtype=F64).reshape(-1)
    if w.numel() >= 4:
        w[:4] = torch.tensor([1.0, -2.0, 2.0, 4.0], dtype=F64)
    else:
        w[0] = 5.0
    return w.reshape(shape)


def _linear(w: torch.Tensor, b: float = 0.7):
    """f(x) = <w, x_b> + b: the input gradient is w for every sample, wherever x is."""
    return lambda x: (x * w).reshape(x.shape[0], w.numel()).sum(1) + b


def _quadratic(x: torch.Tensor) -> torch.Tensor:
    """f(x) = sum x_b^2: the input gradient is 2 x_b."""
    return x.square().reshape(x.shape[0], -1).sum(1)


def _norms(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1).square().sum(1).sqrt()


def _mlp(d_in: int = 3, seed: int = 0, dtype: torch.dtype = F64) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d_in, 5), nn.Tanh(), nn.Linear(5, 1)).to(dtype)


# ------------------------------------------------------------------------------ closed forms
@pytest.mark.parametrize("shape", SAMPLE_SHAPES)
def test_linear_critic_exact_value_every_rank(shape) -> None:
    w = _exact_w(shape)
    real, fake = _data(shape, 1), _data(shape, 2)
    critic = _linear(w)
    # ||w|| = 5 exactly: every step of the penalty is exact in float64.
    assert gradient_penalty(critic, real, fake).item() == 10.0 * (5.0 - 1.0) ** 2
    assert gradient_penalty(critic, real, fake, weight=2.0, target_norm=0.5).item() == 2.0 * 4.5**2
    per = gradient_penalty(critic, real, fake, reduction="none")
    assert per.shape == (B,) and per.dtype == F64 and torch.all(per == 160.0)
    assert gradient_penalty(critic, real, fake, reduction="sum").item() == B * 160.0
    assert r1_penalty(critic, real).item() == 10.0 / 2 * 25.0
    assert r2_penalty(critic, fake, weight=3.0, reduction="none").tolist() == [37.5] * B
    assert dragan_penalty(critic, real, weight=1.0, target_norm=2.0).item() == 9.0


@pytest.mark.parametrize("shape", SAMPLE_SHAPES[1:])
def test_linear_critic_random_weight_every_rank(shape) -> None:
    w = torch.randn(shape, generator=_gen(7), dtype=F64)
    norm = float(np.linalg.norm(w.numpy().ravel()))
    real, fake = _data(shape, 1), _data(shape, 2)
    critic = _linear(w)
    for t, one_sided in ((1.0, False), (0.3, True), (norm + 1.0, True), (norm + 1.0, False)):
        gap = norm - t
        expected = 10.0 * (max(gap, 0.0) if one_sided else gap) ** 2
        got = gradient_penalty(critic, real, fake, target_norm=t, one_sided=one_sided)
        torch.testing.assert_close(got, torch.tensor(expected, dtype=F64), rtol=1e-13, atol=0)
    torch.testing.assert_close(r1_penalty(critic, real).item(), 5.0 * norm**2, rtol=1e-13, atol=0)


def test_linear_critic_module_output_of_shape_b1() -> None:
    lin = nn.Linear(4, 1).to(F64)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, -2.0, 2.0, 4.0]], dtype=F64))
    real, fake = _data((4,), 1), _data((4,), 2)
    assert gradient_penalty(lin, real, fake).item() == 160.0
    assert r1_penalty(lin, real, weight=2.0).item() == 25.0


def test_one_sided_below_and_above_the_target() -> None:
    critic = _linear(_exact_w((4,)))  # ||g|| = 5
    real, fake = _data((4,), 1), _data((4,), 2)
    below = dict(target_norm=6.0, reduction="none")
    assert gradient_penalty(critic, real, fake, one_sided=True, **below).tolist() == [0.0] * B
    assert gradient_penalty(critic, real, fake, one_sided=False, **below).tolist() == [10.0] * B
    above = dict(target_norm=3.0, reduction="none")
    assert gradient_penalty(critic, real, fake, one_sided=True, **above).tolist() == [40.0] * B
    assert gradient_penalty(critic, real, fake, one_sided=False, **above).tolist() == [40.0] * B


@pytest.mark.parametrize("shape", [(3,), (2, 3), (2, 1, 3)])
def test_quadratic_critic_explicit_alpha(shape) -> None:
    real, fake = _data(shape, 3), _data(shape, 4)
    alpha = torch.tensor([0.0, 0.25, 0.5, 1.0], dtype=F64)
    # Hand-derived: g_b = 2 (a_b r_b + (1 - a_b) f_b).
    x_hat = torch.stack([a * r + (1 - a) * f for a, r, f in zip(alpha, real, fake)])
    expected = 10.0 * (2.0 * _norms(x_hat) - 1.0) ** 2
    got = gradient_penalty(_quadratic, real, fake, alpha=alpha, reduction="none")
    torch.testing.assert_close(got, expected, rtol=1e-13, atol=0)
    # alpha = 1 is the real sample, alpha = 0 the fake one.
    torch.testing.assert_close(got[3], 10.0 * (2.0 * _norms(real)[3] - 1.0) ** 2)
    torch.testing.assert_close(got[0], 10.0 * (2.0 * _norms(fake)[0] - 1.0) ** 2)
    # (B,) and (B, 1, ..., 1) are the same alpha.
    full = alpha.reshape((B,) + (1,) * len(shape))
    assert torch.equal(gradient_penalty(_quadratic, real, fake, alpha=full, reduction="none"), got)


def test_quadratic_critic_seeded_generator() -> None:
    real, fake = _data((2, 3), 3), _data((2, 3), 4)
    first = gradient_penalty(_quadratic, real, fake, generator=_gen(11), reduction="none")
    again = gradient_penalty(_quadratic, real, fake, generator=_gen(11), reduction="none")
    other = gradient_penalty(_quadratic, real, fake, generator=_gen(12), reduction="none")
    assert torch.equal(first, again) and not torch.equal(first, other)
    # The documented draw: alpha ~ U[0, 1) of shape (B, 1, 1) in real's dtype.
    alpha = torch.rand((B, 1, 1), generator=_gen(11), dtype=F64)
    expected = 10.0 * (2.0 * _norms(alpha * real + (1 - alpha) * fake) - 1.0) ** 2
    torch.testing.assert_close(first, expected, rtol=1e-13, atol=0)


def test_r1_r2_quadratic_critic() -> None:
    x = _data((2, 3), 5)
    # (gamma / 2) ||2 x||^2 = 2 gamma ||x||^2
    expected = 2.0 * 3.0 * _norms(x) ** 2
    torch.testing.assert_close(r1_penalty(_quadratic, x, weight=3.0, reduction="none"), expected)
    torch.testing.assert_close(r2_penalty(_quadratic, x, weight=3.0, reduction="none"), expected)
    torch.testing.assert_close(r1_penalty(_quadratic, x, weight=0.0), torch.tensor(0.0, dtype=F64))


def test_dragan_reference_draws_and_whole_batch_std() -> None:
    real = _data((2, 3), 6)
    got = dragan_penalty(_quadratic, real, perturb=0.7, generator=_gen(5), reduction="none")
    g = _gen(5)
    noise = torch.rand(real.shape, generator=g, dtype=F64)  # drawn first
    alpha = torch.rand((B, 1, 1), generator=g, dtype=F64)  # then alpha
    sigma = float(np.std(real.numpy()))  # NumPy's std of the whole batch, ddof 0
    x_p = real + 0.7 * sigma * noise
    x_hat = real + alpha * (x_p - real)
    torch.testing.assert_close(got, 10.0 * (2.0 * _norms(x_hat) - 1.0) ** 2, rtol=1e-12, atol=0)
    assert torch.equal(
        got, dragan_penalty(_quadratic, real, perturb=0.7, generator=_gen(5), reduction="none")
    )


# ------------------------------------------------------------------------------ double backward
def _param_fn(penalty, mlp: nn.Module, *args, **kw):
    names = [n for n, _ in mlp.named_parameters()]

    def f(*params):
        critic = functools.partial(functional_call, mlp, dict(zip(names, params)))
        return penalty(critic, *args, **kw)

    return f, tuple(p.detach().clone().requires_grad_(True) for p in mlp.parameters())


@pytest.mark.parametrize(
    ("penalty", "n_inputs", "kw"),
    [
        (gradient_penalty, 2, {"alpha": torch.tensor([0.1, 0.4, 0.6, 0.9], dtype=F64)}),
        (
            gradient_penalty,
            2,
            {
                "alpha": torch.tensor([0.1, 0.4, 0.6, 0.9], dtype=F64),
                "one_sided": True,
                "target_norm": 0.2,
            },
        ),
        (r1_penalty, 1, {}),
        (r2_penalty, 1, {"weight": 3.0}),
    ],
)
def test_penalty_gradient_wrt_critic_parameters(penalty, n_inputs, kw) -> None:
    inputs = [_data((3,), 1), _data((3,), 2)][:n_inputs]
    f, params = _param_fn(penalty, _mlp(), *inputs, **kw)
    # gradcheck of the penalty w.r.t. the parameters exercises the double backward
    # (create_graph=True); gradgradcheck the derivative of that.
    assert torch.autograd.gradcheck(f, params, eps=1e-6, atol=1e-6, rtol=1e-5)
    assert torch.autograd.gradgradcheck(f, params, eps=1e-6, atol=1e-5, rtol=1e-4)


def test_dragan_gradient_wrt_critic_parameters() -> None:
    real = _data((3,), 1)
    mlp = _mlp()
    names = [n for n, _ in mlp.named_parameters()]

    def f(*params):
        critic = functools.partial(functional_call, mlp, dict(zip(names, params)))
        return dragan_penalty(critic, real, generator=_gen(3))  # the same draw each call

    params = tuple(p.detach().clone().requires_grad_(True) for p in mlp.parameters())
    assert torch.autograd.gradcheck(f, params, eps=1e-6, atol=1e-6, rtol=1e-5)


def test_backward_reaches_the_critic_and_only_the_critic() -> None:
    mlp = _mlp()
    real = _data((3,), 1).requires_grad_(True)
    fake = _data((3,), 2).requires_grad_(True)
    gradient_penalty(mlp, real, fake).backward()
    inner = [p for n, p in mlp.named_parameters() if n != "2.bias"]
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in inner)
    assert all(p.grad.abs().sum() > 0 for p in inner)
    assert mlp[2].bias.grad is None  # the output bias does not change the input gradient
    assert real.grad is None and fake.grad is None  # inputs are detached


def test_no_grad_gives_the_value_without_a_graph() -> None:
    mlp = _mlp()
    real, fake = _data((3,), 1), _data((3,), 2)
    alpha = torch.full((B,), 0.3, dtype=F64)
    with_graph = gradient_penalty(mlp, real, fake, alpha=alpha)
    with torch.no_grad():
        value = gradient_penalty(mlp, real, fake, alpha=alpha)
        r1 = r1_penalty(mlp, real)
    assert with_graph.requires_grad and not value.requires_grad and not r1.requires_grad
    torch.testing.assert_close(value, with_graph.detach(), rtol=0, atol=0)


# ------------------------------------------------------------------------------ zero gradient
def test_flat_critic_gives_weight_t_squared_and_finite_gradients() -> None:
    w = nn.Parameter(torch.zeros(2, 3, dtype=F64))
    bias = nn.Parameter(torch.tensor(0.5, dtype=F64))

    def critic(x):
        return (x * w).reshape(x.shape[0], w.numel()).sum(1) + bias

    real, fake = _data((2, 3), 1), _data((2, 3), 2)
    for one_sided, expected in ((False, 10.0 * 1.5**2), (True, 0.0)):
        value = gradient_penalty(critic, real, fake, target_norm=1.5, one_sided=one_sided)
        assert value.item() == expected
        w.grad = None
        value.backward()
        # The naive g / ||g|| is 0/0 = NaN here; the penalty's gradient must be finite.
        assert w.grad is not None and torch.isfinite(w.grad).all()
    f, params = _param_fn(gradient_penalty, _mlp(), _data((3,), 1), _data((3,), 2))
    with torch.no_grad():
        for p in params:
            p.zero_()  # a zero MLP: g = 0 at every point
    loss = f(*params)
    assert loss.item() == 10.0
    grads = [
        g
        for g in torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
        if g is not None
    ]
    second = torch.autograd.grad(sum(g.sum() for g in grads), params, allow_unused=True)
    assert grads and all(
        torch.isfinite(g).all() for g in (*grads, *(s for s in second if s is not None))
    )


def test_critic_with_zero_input_gradient_in_graph() -> None:
    critic = lambda x: 0.0 * x.sum(1)  # noqa: E731
    real, fake = _data((3,), 1), _data((3,), 2)
    assert gradient_penalty(critic, real, fake, target_norm=2.0).item() == 40.0
    assert r1_penalty(critic, real).item() == 0.0
    assert dragan_penalty(critic, real).item() == 10.0


# ------------------------------------------------------------------------------ AMP
def test_bf16_autocast_with_grad_scaler_linear_critic() -> None:
    torch.manual_seed(0)
    lin = nn.Linear(6, 1)
    real, fake = torch.randn(B, 6), torch.randn(B, 6)
    alpha = torch.full((B,), 0.3)
    kw = dict(alpha=alpha, target_norm=0.0)
    exact = gradient_penalty(lin, real, fake, **kw)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        scaled = gradient_penalty(lin, real, fake, scaler=scaler, **kw)
        plain = gradient_penalty(lin, real, fake, **kw)
    assert scaled.dtype == torch.float32
    # Scaling by a power of two is exact in bf16: the scaler is undone exactly.
    assert torch.equal(scaled, plain)
    # The only rounding on the gradient's path is the cast of w to bf16 (each entry within
    # a relative 2**-9); the backward matmul multiplies it by a power of two. With t = 0
    # the penalty is ||g||^2: relative error <= 2 * 2**-9 + 2**-18 < 2**-8.
    torch.testing.assert_close(scaled, exact, rtol=2.0**-8, atol=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        r1 = r1_penalty(lin, real, scaler=scaler)
    torch.testing.assert_close(r1, r1_penalty(lin, real), rtol=2.0**-8, atol=0)


def test_bf16_autocast_with_grad_scaler_mlp() -> None:
    mlp = _mlp(6, dtype=torch.float32)
    real, fake = torch.randn(B, 6), torch.randn(B, 6)
    alpha = torch.full((B,), 0.3)
    exact = gradient_penalty(mlp, real, fake, alpha=alpha)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = gradient_penalty(mlp, real, fake, alpha=alpha, scaler=scaler)
        dr = dragan_penalty(mlp, real, generator=_gen(1), scaler=scaler)
    # About six bf16 roundings (unit roundoff 2**-8) lie on the gradient's path: the casts
    # of x and both weights, the first matmul, tanh' and the backward matmul. ||g|| is then
    # within ~6 * 2**-8 = 2.3 % and the squared penalty within ~5 %.
    torch.testing.assert_close(got, exact, rtol=0.05, atol=0)
    torch.testing.assert_close(dr, dragan_penalty(mlp, real, generator=_gen(1)), rtol=0.05, atol=0)
    (got + dr).backward()  # the double backward of an autocast graph
    assert all(torch.isfinite(p.grad).all() for n, p in mlp.named_parameters() if n != "2.bias")


def test_fp16_autocast_scaler_rescues_underflowing_gradients() -> None:
    torch.manual_seed(0)
    lin = nn.Linear(6, 1)
    real, fake = torch.randn(B, 6), torch.randn(B, 6)
    # The critic's output gradient passes 1e-8, below float16's smallest subnormal (6e-8).
    critic = lambda x: lin(x) * 1e-4 * 1e-4  # noqa: E731
    kw = dict(alpha=torch.full((B,), 0.3), target_norm=0.0, weight=1.0)
    exact = gradient_penalty(critic, real, fake, **kw)
    torch.testing.assert_close(exact, (lin.weight.norm() * 1e-8) ** 2)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)
    with torch.autocast("cpu", dtype=torch.float16):
        flushed = gradient_penalty(critic, real, fake, **kw)
        rescued = gradient_penalty(critic, real, fake, scaler=scaler, **kw)
    assert flushed.item() == 0.0  # without the scaler the gradient flushes to zero
    # float16's unit roundoff is 2**-11; the roundings on the gradient's path (w's cast,
    # the two 1e-4 scalings, the backward matmul) leave g within ~4 * 2**-11 = 2**-9 and
    # the squared penalty within 2**-8.
    torch.testing.assert_close(rescued, exact, rtol=2.0**-8, atol=0)


def test_disabled_scaler_is_a_no_op() -> None:
    mlp = _mlp()
    real, fake = _data((3,), 1), _data((3,), 2)
    alpha = torch.full((B,), 0.3, dtype=F64)
    off = torch.amp.GradScaler("cpu", enabled=False)
    torch.testing.assert_close(
        gradient_penalty(mlp, real, fake, alpha=alpha, scaler=off),
        gradient_penalty(mlp, real, fake, alpha=alpha),
        rtol=0,
        atol=0,
    )


def test_half_inputs_return_half() -> None:
    critic = _linear(_exact_w((4,)).half())
    real, fake = _data((4,), 1, torch.float16), _data((4,), 2, torch.float16)
    value = gradient_penalty(critic, real, fake)
    assert value.dtype == torch.float16 and value.item() == 160.0
    assert dragan_penalty(critic, real).item() == 160.0


# ------------------------------------------------------------------------------ hygiene
@pytest.mark.parametrize("requires_grad", [False, True])
def test_caller_tensors_are_untouched(requires_grad) -> None:
    mlp = _mlp()
    real = _data((3,), 1).requires_grad_(requires_grad)
    fake = _data((3,), 2).requires_grad_(requires_grad)
    alpha = torch.full((B,), 0.4, dtype=F64)
    before = [t.detach().clone() for t in (real, fake, alpha)]
    for value in (
        gradient_penalty(mlp, real, fake, alpha=alpha),
        r1_penalty(mlp, real),
        r2_penalty(mlp, fake),
        dragan_penalty(mlp, real),
    ):
        value.backward()
    for t, b in zip((real, fake, alpha), before):
        assert torch.equal(t.detach(), b)
    assert real.requires_grad is requires_grad and fake.requires_grad is requires_grad
    assert not alpha.requires_grad and real.grad is None and fake.grad is None


def test_inference_tensors_as_inputs() -> None:
    with torch.inference_mode():
        real, fake = _data((3,), 1), _data((3,), 2)
    critic = _linear(_exact_w((3,)))
    assert gradient_penalty(critic, real, fake).item() == 160.0
    assert r1_penalty(critic, real).item() == 125.0


def test_empty_and_single_sample_batches() -> None:
    critic = _linear(_exact_w((3,)))
    empty = torch.zeros(0, 3, dtype=F64)
    for value in (
        gradient_penalty(critic, empty, empty),
        r1_penalty(critic, empty, reduction="sum"),
        dragan_penalty(critic, empty),
    ):
        assert value.item() == 0.0
    assert gradient_penalty(critic, empty, empty, reduction="none").shape == (0,)
    one = _data((3,), 1)[:1]
    assert gradient_penalty(critic, one, one).item() == 160.0
    assert dragan_penalty(critic, one).item() == 160.0


def test_conditional_critic_through_partial() -> None:
    emb = nn.Embedding(3, 4).to(F64)
    lin = nn.Linear(4, 1).to(F64)

    def critic(x, labels):
        return lin(x * emb(labels))

    real, fake = _data((4,), 1), _data((4,), 2)
    labels = torch.tensor([0, 1, 2, 1])
    alpha = torch.full((B,), 0.5, dtype=F64)
    got = gradient_penalty(
        functools.partial(critic, labels=labels), real, fake, alpha=alpha, reduction="none"
    )
    # Linear in x: g_b = w * emb(labels_b).
    g = lin.weight[0] * emb(labels)
    torch.testing.assert_close(got, 10.0 * (_norms(g) - 1.0) ** 2)


# ------------------------------------------------------------------------------ modules
def test_modules_equal_functions() -> None:
    mlp = _mlp()
    real, fake = _data((3,), 1), _data((3,), 2)
    alpha = torch.full((B,), 0.2, dtype=F64)
    gp = GradientPenalty(weight=3.0, target_norm=0.5, one_sided=True, reduction="none")
    torch.testing.assert_close(
        gp(mlp, real, fake, alpha=alpha),
        gradient_penalty(
            mlp,
            real,
            fake,
            weight=3.0,
            target_norm=0.5,
            one_sided=True,
            alpha=alpha,
            reduction="none",
        ),
    )
    torch.testing.assert_close(R1Penalty(weight=2.0)(mlp, real), r1_penalty(mlp, real, weight=2.0))
    torch.testing.assert_close(
        R2Penalty(reduction="sum")(mlp, fake), r2_penalty(mlp, fake, reduction="sum")
    )
    torch.testing.assert_close(
        DRAGANPenalty(perturb=0.2)(mlp, real, generator=_gen(4)),
        dragan_penalty(mlp, real, perturb=0.2, generator=_gen(4)),
    )
    assert "one_sided=True" in repr(gp) and "perturb=0.2" in repr(DRAGANPenalty(perturb=0.2))
    for module in (gp, R1Penalty(), R2Penalty(), DRAGANPenalty()):
        assert module.state_dict() == {} and not list(module.parameters())
        assert (
            repr(pickle.loads(pickle.dumps(module))) == repr(module) == repr(copy.deepcopy(module))
        )


@pytest.mark.parametrize(
    ("module", "function", "per_call"),
    [
        (GradientPenalty, gradient_penalty, {"alpha", "generator", "scaler"}),
        (R1Penalty, r1_penalty, {"scaler"}),
        (R2Penalty, r2_penalty, {"scaler"}),
        (DRAGANPenalty, dragan_penalty, {"generator", "scaler"}),
    ],
)
def test_signature_parity(module, function, per_call) -> None:
    def kw_only(f):
        return {
            n: p.default
            for n, p in inspect.signature(f).parameters.items()
            if p.kind is p.KEYWORD_ONLY
        }

    fn_kw = kw_only(function)
    assert kw_only(module.__init__) == {k: v for k, v in fn_kw.items() if k not in per_call}
    assert set(kw_only(module.forward)) == per_call
    assert list(fn_kw)[-1] == "reduction"


# ------------------------------------------------------------------------------ errors
_R, _F = _data((3,), 1), _data((3,), 2)
_C = _linear(_exact_w((3,)))
_LIN = nn.Linear(3, 1).to(F64)

ERRORS = [
    # inputs
    (
        lambda: gradient_penalty(_C, _R, _data((4,), 2)),
        ValueError,
        r"gradient_penalty\(\): `fake` must have the same shape as `real` \(4, 3\); got \(4, 4\)\.",
    ),
    (
        lambda: gradient_penalty(_C, _R, _R[:2]),
        ValueError,
        r"`fake` must have the same shape as `real` \(4, 3\); got \(2, 3\)",
    ),
    (
        lambda: gradient_penalty(_C, _R.long(), _F),
        TypeError,
        r"`real` must be a floating-point tensor; got dtype int64",
    ),
    (
        lambda: gradient_penalty(_C, _R, _F.int()),
        TypeError,
        r"`fake` must be a floating-point tensor; got dtype int32",
    ),
    (
        lambda: r1_penalty(_C, [1.0, 2.0]),
        TypeError,
        r"r1_penalty\(\): `real` must be a torch.Tensor; got list",
    ),
    (
        lambda: r2_penalty(_C, torch.tensor(1.0)),
        ValueError,
        r"r2_penalty\(\): `fake` must have at least 1 dimensions",
    ),
    (
        lambda: dragan_penalty(_C, torch.ones(B, 3, dtype=torch.bool)),
        TypeError,
        r"`real` must be a floating-point",
    ),
    # critic
    (
        lambda: gradient_penalty("critic", _R, _F),
        TypeError,
        r"`critic` must be a callable.*; got str\. .*functools\.partial",
    ),
    (lambda: r1_penalty(None, _R), TypeError, r"`critic` must be a callable"),
    (
        lambda: gradient_penalty(lambda x: x.sum(), _R, _F),
        ValueError,
        r"`critic` must return a tensor whose first dimension is the batch size 4; "
        r"got an output of shape \(\)",
    ),
    (
        lambda: r1_penalty(lambda x: x.sum(1)[:2], _R),
        ValueError,
        r"batch size 4; got an output of shape \(2,\)",
    ),
    (
        lambda: r1_penalty(lambda x: x.T, _R),
        ValueError,
        r"batch size 4; got an output of shape \(3, 4\)",
    ),
    (
        lambda: r1_penalty(lambda x: x.sum(1).tolist(), _R),
        TypeError,
        r"`critic` must return a torch.Tensor; got list",
    ),
    (
        lambda: r1_penalty(lambda x: (x > 0).sum(1), _R),
        TypeError,
        r"`critic` must return a floating-point tensor; got dtype int64",
    ),
    (
        lambda: gradient_penalty(lambda x: torch.zeros(x.shape[0]), _R, _F),
        ValueError,
        r"`critic` must return an output that depends on its input; "
        r"got an output that does not require grad\. .*detaches",
    ),
    (
        lambda: r1_penalty(lambda x: _LIN(x.detach()), _R),
        ValueError,
        r"`critic` must return an output that depends on its input; "
        r"got an output whose graph does not contain the input",
    ),
    (
        lambda: dragan_penalty(lambda x: _LIN(torch.ones_like(x)), _R),
        ValueError,
        r"depends on its input",
    ),
    # hyperparameters
    (
        lambda: gradient_penalty(_C, _R, _F, weight=-1.0),
        ValueError,
        r"`weight` must be in \[0, inf\); got -1\.0",
    ),
    (
        lambda: gradient_penalty(_C, _R, _F, weight=float("nan")),
        ValueError,
        r"`weight` must be a finite number",
    ),
    (
        lambda: r1_penalty(_C, _R, weight=float("inf")),
        ValueError,
        r"r1_penalty\(\): `weight` must be a finite number",
    ),
    (
        lambda: r2_penalty(_C, _F, weight="10"),
        TypeError,
        r"`weight` must be a real number; got str",
    ),
    (
        lambda: gradient_penalty(_C, _R, _F, weight=True),
        TypeError,
        r"`weight` must be a real number; got bool",
    ),
    (
        lambda: gradient_penalty(_C, _R, _F, target_norm=-0.5),
        ValueError,
        r"`target_norm` must be in \[0, inf\); got -0\.5",
    ),
    (
        lambda: dragan_penalty(_C, _R, target_norm=-1),
        ValueError,
        r"dragan_penalty\(\): `target_norm` must be in \[0, inf\)",
    ),
    (
        lambda: dragan_penalty(_C, _R, perturb=0.0),
        ValueError,
        r"`perturb` must be in \(0, inf\); got 0\.0",
    ),
    (lambda: dragan_penalty(_C, _R, perturb=-0.5), ValueError, r"`perturb` must be in \(0, inf\)"),
    (
        lambda: gradient_penalty(_C, _R, _F, one_sided=1),
        ValueError,
        r"`one_sided` must be one of False \| True; got 1",
    ),
    (
        lambda: gradient_penalty(_C, _R, _F, reduction="meen"),
        ValueError,
        r"`reduction` must be one of .*; got 'meen'\. Did you mean 'mean'\?",
    ),
    (
        lambda: r1_penalty(_C, _R, reduction="avg"),
        ValueError,
        r"r1_penalty\(\): `reduction` must be one of 'mean' \| 'sum' \| 'none'",
    ),
    # alpha, generator, scaler
    (
        lambda: gradient_penalty(_C, _R, _F, alpha=torch.rand(B, 3, dtype=F64)),
        ValueError,
        r"`alpha` must have shape \(B,\) = \(4,\) or \(B, 1, \.\.\., 1\) = \(4, 1\); got \(4, 3\)",
    ),
    (
        lambda: gradient_penalty(_C, _R, _F, alpha=torch.rand(B - 1)),
        ValueError,
        r"`alpha` must have shape .*; got \(3,\)",
    ),
    (
        lambda: gradient_penalty(_C, _R, _F, alpha=torch.ones(B, dtype=torch.long)),
        TypeError,
        r"`alpha` must be a floating-point tensor",
    ),
    (
        lambda: gradient_penalty(_C, _R, _F, alpha=0.5),
        TypeError,
        r"`alpha` must be a torch.Tensor; got float",
    ),
    (
        lambda: gradient_penalty(_C, _R, _F, alpha=torch.rand(B), generator=_gen(0)),
        ValueError,
        r"`generator` must be None when `alpha` is given",
    ),
    (
        lambda: dragan_penalty(_C, _R, generator=0),
        TypeError,
        r"`generator` must be a torch.Generator or None; got int",
    ),
    (
        lambda: r1_penalty(_C, _R, scaler=2.0**16),
        TypeError,
        r"`scaler` must be a torch.amp.GradScaler or None; got float",
    ),
    # modules validate in __init__
    (
        lambda: GradientPenalty(weight=-1.0),
        ValueError,
        r"GradientPenalty\(\): `weight` must be in \[0, inf\)",
    ),
    (
        lambda: GradientPenalty(one_sided="yes"),
        ValueError,
        r"GradientPenalty\(\): `one_sided` must be one of",
    ),
    (
        lambda: R1Penalty(reduction="mena"),
        ValueError,
        r"R1Penalty\(\): `reduction`.*Did you mean 'mean'\?",
    ),
    (
        lambda: R2Penalty(weight=None),
        TypeError,
        r"R2Penalty\(\): `weight` must be a real number; got NoneType",
    ),
    (
        lambda: DRAGANPenalty(perturb=0),
        ValueError,
        r"DRAGANPenalty\(\): `perturb` must be in \(0, inf\)",
    ),
]


@pytest.mark.parametrize(
    ("call", "kind", "pattern"), ERRORS, ids=[str(i) for i in range(len(ERRORS))]
)
def test_errors(call, kind, pattern) -> None:
    with pytest.raises(kind, match=pattern):
        call()


def test_inference_mode_raises_value_error() -> None:
    with torch.inference_mode(), pytest.raises(ValueError, match=r"outside torch.inference_mode"):
        gradient_penalty(_C, _R, _F)
