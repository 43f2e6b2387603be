r"""GAN gradient penalties: WGAN-GP, one-sided GP, R1, R2 and DRAGAN, AMP-safe.

A gradient penalty constrains the gradient of a critic (discriminator) :math:`D` with
respect to its *input*. Every function here takes the critic itself, draws or receives
the points where the gradient is taken, differentiates ``critic(x).sum()`` with respect
to ``x`` with ``create_graph=True`` (so the penalty backpropagates into the critic's
parameters: a double backward) and returns one penalty per sample, reduced over the
batch. With :math:`g_b = \nabla_x D(x)_b` the gradient of sample :math:`b`:

* ``gradient_penalty`` (WGAN-GP, Gulrajani et al. 2017, "Improved Training of
  Wasserstein GANs"): at :math:`\hat x = \alpha x_r + (1 - \alpha) x_f`,
  :math:`\alpha \sim U[0, 1)` per sample,
  :math:`\lambda (\lVert g_b \rVert_2 - t)^2`; ``one_sided=True`` gives
  :math:`\lambda \max(0, \lVert g_b \rVert_2 - t)^2` (Petzka et al. 2018, "On the
  regularization of Wasserstein GANs").
* ``r1_penalty`` / ``r2_penalty`` (Mescheder et al. 2018, "Which Training Methods for
  GANs do actually Converge?"): :math:`\frac{\gamma}{2} \lVert g_b \rVert_2^2` at real
  (R1) or fake (R2) samples, with ``weight`` :math:`= \gamma` (the paper's
  :math:`\gamma / 2` convention, also StyleGAN's).
* ``dragan_penalty`` (Kodali et al. 2017, "On Convergence and Stability of GANs"): the
  WGAN-GP penalty at points interpolated between real samples and a perturbed copy
  :math:`x_p = x_r + c\,\sigma\,u`, :math:`u \sim U[0, 1)` elementwise.

The gradient of ``critic(x).sum()`` is the per-sample gradient only when the critic
treats the samples of a batch independently: batch normalization in the critic breaks
that (Gulrajani et al. use layer normalization instead). The inputs are detached: the
penalty trains the critic, never the generator through ``fake``. The caller's tensors
are not modified (neither their values nor their ``requires_grad`` flag). A
conditional critic is passed as a closure, ``functools.partial(critic, labels=y)`` or
``lambda x: critic(x, y)``.

The norm has no NaN gradient where :math:`g_b = 0` (a critic that is flat at
:math:`\hat x`: the penalty is then :math:`\lambda t^2` with a zero gradient). Half
precision gradients are accumulated in float32; the result has the dtype of ``real``
(float32 under autocast), as losslab's losses do.

Distributed data parallel training (DDP): compute the penalty and the critic loss in the
same step and call **one** backward of their sum. The penalty's inner ``autograd.grad``
(``create_graph=True``) fires none of DDP's hooks; they fire during that backward, whose
double backward reaches every parameter, and DDP's average is then the single-process
gradient over the global batch (equal shards; pass each rank's rows of one ``alpha`` to
reproduce a run exactly). The critic passed may be the DDP module or ``ddp.module``, also
with ``find_unused_parameters=True``; with ``static_graph=True`` pass ``ddp.module``
(through the DDP module the gradients silently stay unsynchronized). Two backwards per step
(``critic_loss.backward(); penalty.backward()``) leave the second unsynchronized and the next
forward raises "Expected to have finished reduction". A penalty-only step (lazy R1) gives no
gradient to the parameters the input gradient does not depend on (the critic's output bias),
so DDP never finishes its reduction (with or without
``find_unused_parameters``): add ``0.0 * sum(p.sum() for p in ddp.parameters())`` to the
penalty, or compute it through ``ddp.module`` and all-reduce the gradients by hand.

Mixed precision: pass the training loop's ``torch.amp.GradScaler`` as ``scaler``. As in
PyTorch's AMP examples ("Gradient penalty" in docs/notes/amp_examples), the input
gradient is taken of the *scaled* critic output, so that small float16 gradients inside
the critic do not flush to zero, and unscaled in float32 before the norm. The penalty
(float32) is added to the loss that ``scaler.scale(...)`` backpropagates: an overflow in
its backward makes ``scaler.step`` skip the step like any other. What is scaled is the
output's sum divided by :math:`2^{\lceil \log_2 B \rceil}` (multiplied back, exactly,
after the gradient): each output's gradient is then about ``scale / B``, as under a
batch-mean loss, where the plain sum would give it the scale itself, and GradScaler's
default ``init_scale=2**16`` exceeds float16's largest value, 65504. A training step of
the critic:

>>> import torch
>>> from torch import nn
>>> from losslab.losses.adversarial import GradientPenalty
>>> _ = torch.manual_seed(0)
>>> critic = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 1))
>>> opt = torch.optim.Adam(critic.parameters(), lr=1e-3, betas=(0.0, 0.9))
>>> gp = GradientPenalty(weight=10.0)
>>> scaler = torch.amp.GradScaler("cpu")  # torch.amp.GradScaler("cuda") on a GPU
>>> real, fake = torch.randn(32, 2), torch.randn(32, 2) + 2.0
>>> opt.zero_grad()
>>> with torch.autocast("cpu", dtype=torch.bfloat16):  # "cuda", torch.float16 on a GPU
...     wasserstein = critic(fake).float().mean() - critic(real).float().mean()
...     penalty = gp(critic, real, fake, scaler=scaler)
>>> scaler.scale(wasserstein + penalty).backward()
>>> scaler.step(opt)
>>> scaler.update()
>>> penalty.dtype, bool(torch.isfinite(penalty))
(torch.float32, True)
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import torch
from torch import Tensor, nn

from losslab._checks import (
    check_choice,
    check_float,
    check_floating,
    check_ndim_at_least,
    check_reduction,
    check_same_device,
    check_same_shape,
    fail,
)
from losslab._reduce import output_dtype, reduce, upcast

__all__ = [
    "DRAGANPenalty",
    "GradientPenalty",
    "R1Penalty",
    "R2Penalty",
    "dragan_penalty",
    "gradient_penalty",
    "r1_penalty",
    "r2_penalty",
]

Critic = Callable[[Tensor], Tensor]


# ------------------------------------------------------------------------------ checks
def _check_critic(fn: str, critic: Any) -> None:
    if not callable(critic):
        fail(
            fn,
            "critic",
            "be a callable (an nn.Module or a function of the input batch)",
            type(critic).__name__,
            kind=TypeError,
            raw_got=True,
            hint="For a conditional critic pass functools.partial(critic, labels=y).",
        )


def _check_inputs(
    fn: str, critic: Any, name: str, x: Any, fake: Any = None, fake_name: str = "fake"
) -> None:
    """Critic callable; ``x`` (and ``fake``) floating point, rank >= 1, one shape, one device."""
    _check_critic(fn, critic)
    check_floating(fn, name, x)
    check_ndim_at_least(fn, name, x, 1, "(B, ...), the batch first")
    if fake is not None:
        check_floating(fn, fake_name, fake)
        check_same_shape(fn, fake_name, fake, name, x)
        check_same_device(fn, fake_name, fake, name, x)
    if torch.is_inference_mode_enabled():
        fail(
            fn,
            "critic",
            "be differentiated outside torch.inference_mode() (a gradient penalty needs autograd)",
            "a call under inference mode",
            raw_got=True,
            hint="Use torch.no_grad() to compute the value alone.",
        )


def _check_generator(fn: str, generator: Any, ref: Tensor) -> Optional[torch.Generator]:
    if generator is None:
        return None
    if not isinstance(generator, torch.Generator):
        fail(
            fn,
            "generator",
            "be a torch.Generator or None",
            type(generator).__name__,
            kind=TypeError,
            raw_got=True,
        )
    if generator.device.type != ref.device.type:
        fail(
            fn,
            "generator",
            f"be on the device of `real` ({ref.device.type})",
            generator.device.type,
            raw_got=True,
        )
    return generator


def _check_scaler(fn: str, scaler: Any) -> None:
    if scaler is None:
        return
    if not (
        callable(getattr(scaler, "scale", None)) and callable(getattr(scaler, "get_scale", None))
    ):
        fail(
            fn,
            "scaler",
            "be a torch.amp.GradScaler or None",
            type(scaler).__name__,
            kind=TypeError,
            raw_got=True,
        )


def _check_gp_options(
    fn: str, weight: float, target_norm: float, one_sided: bool = False
) -> tuple[float, float, bool]:
    """Hyperparameter checks of the WGAN-GP family, shared by functions and modules."""
    weight = check_float(fn, "weight", weight, low=0.0)
    target_norm = check_float(fn, "target_norm", target_norm, low=0.0)
    one_sided = check_choice(fn, "one_sided", one_sided, (False, True))
    return weight, target_norm, one_sided


def _check_perturb(fn: str, perturb: float) -> float:
    return check_float(fn, "perturb", perturb, low=0.0, low_open=True)


def _batch_shape(x: Tensor) -> tuple[int, ...]:
    """(B, 1, ..., 1): one interpolation coefficient per sample, broadcast over its features."""
    return (x.shape[0],) + (1,) * (x.dim() - 1)


def _as_alpha(fn: str, alpha: Any, real: Tensor) -> Tensor:
    check_floating(fn, "alpha", alpha)
    shape = _batch_shape(real)
    if tuple(alpha.shape) not in (shape, shape[:1]):
        fail(
            fn,
            "alpha",
            f"have shape (B,) = {shape[:1]} or (B, 1, ..., 1) = {shape}",
            tuple(alpha.shape),
            raw_got=True,
        )
    check_same_device(fn, "alpha", alpha, "real", real)
    return alpha.detach().reshape(shape).to(real.dtype)


# ------------------------------------------------------------------------------ core
def _input_grad(fn: str, critic: Critic, x: Tensor, scaler: Any) -> Tensor:
    """Per-sample gradient of ``critic(x).sum()`` w.r.t. a detached ``x``, unscaled, compute dtype.

    The graph of the gradient is kept (``create_graph``) whenever the caller records
    gradients, so the penalty backpropagates into the critic's parameters; under
    ``torch.no_grad()`` only the value is computed.
    """
    build_graph = torch.is_grad_enabled()
    x = x.detach()
    if x.is_inference():  # an inference tensor cannot be made to require grad
        x = x.clone()
    batch = x.shape[0]
    with torch.enable_grad():
        x.requires_grad_(True)
        out = critic(x)
        if not isinstance(out, Tensor):
            fail(
                fn,
                "critic",
                "return a torch.Tensor",
                type(out).__name__,
                kind=TypeError,
                raw_got=True,
            )
        if out.dim() == 0 or out.shape[0] != batch:
            fail(
                fn,
                "critic",
                f"return a tensor whose first dimension is the batch size {batch}",
                f"an output of shape {tuple(out.shape)}",
                raw_got=True,
                hint="The critic must score every sample: (B,) or (B, 1).",
            )
        if not out.is_floating_point():
            fail(
                fn,
                "critic",
                "return a floating-point tensor",
                f"dtype {str(out.dtype).replace('torch.', '')}",
                kind=TypeError,
                raw_got=True,
            )
        hint = (
            "The gradient w.r.t. the input does not exist: the critic ignores its input, "
            "detaches it (.detach(), .item(), numpy) or runs under torch.no_grad()."
        )
        if not out.requires_grad:
            fail(
                fn,
                "critic",
                "return an output that depends on its input",
                "an output that does not require grad",
                raw_got=True,
                hint=hint,
            )
        # AMP recipe: differentiate the scaled output so that small float16 gradients
        # inside the critic do not flush to zero. The sum is divided by `denom`, B rounded
        # up to a power of two: each output then receives about scale / B, what a batch
        # mean loss gives it, where the plain sum would hand it the scale itself (the
        # default 2**16 exceeds float16's 65504); a power of two keeps it exact.
        denom = 1 << (max(batch, 1) - 1).bit_length()
        total = out.sum() if scaler is None else scaler.scale(upcast(out).sum() / denom)
        (grad,) = torch.autograd.grad(total, x, create_graph=build_graph, allow_unused=True)
    if grad is None:
        fail(
            fn,
            "critic",
            "return an output that depends on its input",
            "an output whose graph does not contain the input",
            raw_got=True,
            hint=hint,
        )
    grad = upcast(grad)
    if scaler is not None:
        # denom / scale as a Python float: exact for GradScaler's power-of-two scales.
        grad = grad * (denom / float(scaler.get_scale()))
    return grad


def _flat(grad: Tensor) -> Tensor:
    """(B, features); ``reshape(B, -1)`` is ambiguous for an empty batch."""
    return grad.flatten(1) if grad.dim() > 1 else grad.unsqueeze(1)


def _safe_norm(grad: Tensor) -> Tensor:
    r"""Per-sample L2 norm (B,) with a finite gradient everywhere.

    Where :math:`g = 0` the naive gradient :math:`g / \lVert g \rVert` is 0/0 = NaN (and
    the second derivative of ``torch.linalg.vector_norm`` is NaN there too): the double
    ``torch.where`` returns a constant 0 and feeds the square root a 1 instead. No
    rescaling against overflow: :math:`\sum g^2` overflows only where the squared
    penalty itself does.
    """
    sq = _flat(grad).square().sum(dim=1)
    nonzero = sq > 0
    root = torch.sqrt(torch.where(nonzero, sq, torch.ones_like(sq)))
    return torch.where(nonzero, root, torch.zeros_like(root))


def _norm_penalty(grad: Tensor, weight: float, target_norm: float, one_sided: bool) -> Tensor:
    gap = _safe_norm(grad) - target_norm
    if one_sided:
        gap = torch.relu(gap)
    return weight * gap.square()


def _squared_norm_penalty(grad: Tensor, weight: float) -> Tensor:
    # No square root: the gradient 2 g is finite everywhere, including g = 0.
    return (0.5 * weight) * _flat(grad).square().sum(dim=1)


# ------------------------------------------------------------------------------ functions
def gradient_penalty(
    critic: Critic,
    real: Tensor,
    fake: Tensor,
    *,
    weight: float = 10.0,
    target_norm: float = 1.0,
    one_sided: bool = False,
    alpha: Optional[Tensor] = None,
    generator: Optional[torch.Generator] = None,
    scaler: Optional[Any] = None,
    reduction: str = "mean",
) -> Tensor:
    r"""WGAN-GP gradient penalty (Gulrajani et al. 2017) at random interpolates.

    .. math::
        \hat x_b = \alpha_b x^{r}_b + (1 - \alpha_b) x^{f}_b, \qquad
        \ell_b = \lambda \bigl(\lVert \nabla_x D(\hat x)_b \rVert_2 - t\bigr)^2

    ``one_sided=True`` penalizes only norms above the target,
    :math:`\lambda \max(0, \lVert \nabla_x D(\hat x)_b \rVert_2 - t)^2` (Petzka et al. 2018).
    ``real`` and ``fake`` are detached: the penalty reaches the critic's parameters only.

    Args:
        critic: callable mapping a batch (B, ...) to scores (B,) or (B, 1); it must treat
            samples independently. Conditional critic: ``functools.partial(D, labels=y)``.
        real: real samples (B, ...), floating point, rank >= 1.
        fake: generated samples, same shape, dtype kind and device as ``real``.
        weight: :math:`\lambda \ge 0` (10 in the paper).
        target_norm: :math:`t \ge 0` (1 in the paper).
        one_sided: penalize only :math:`\lVert g \rVert > t`.
        alpha: interpolation coefficients (B,) or (B, 1, ..., 1); drawn from
            :math:`U[0, 1)` on ``real``'s device and dtype when ``None``.
        generator: ``torch.Generator`` for the draw of ``alpha`` (not with ``alpha``).
        scaler: the loop's ``torch.amp.GradScaler`` under mixed precision (see the module
            docstring); ``None`` otherwise.
        reduction: ``"mean" | "sum" | "none"`` over the batch; ``none`` returns (B,).

    >>> import torch
    >>> critic = lambda x: x @ torch.tensor([3.0, 4.0])  # gradient (3, 4), norm 5
    >>> gradient_penalty(critic, torch.randn(8, 2), torch.randn(8, 2))
    tensor(160.)
    >>> gradient_penalty(critic, torch.zeros(2, 2), torch.ones(2, 2), target_norm=6.0,
    ...                  one_sided=True, reduction="none")
    tensor([0., 0.])
    """
    fn = "gradient_penalty"
    _check_inputs(fn, critic, "real", real, fake)
    weight, target_norm, one_sided = _check_gp_options(fn, weight, target_norm, one_sided)
    check_reduction(fn, reduction)
    _check_scaler(fn, scaler)
    generator = _check_generator(fn, generator, real)
    if alpha is not None:
        if generator is not None:
            fail(
                fn, "generator", "be None when `alpha` is given", "a torch.Generator", raw_got=True
            )
        alpha = _as_alpha(fn, alpha, real)
    else:
        alpha = torch.rand(
            _batch_shape(real), generator=generator, dtype=real.dtype, device=real.device
        )
    with torch.no_grad():
        x_hat = alpha * real + (1 - alpha) * fake
    grad = _input_grad(fn, critic, x_hat, scaler)
    loss = _norm_penalty(grad, weight, target_norm, one_sided)
    return reduce(loss, reduction, out_dtype=output_dtype(real))


def r1_penalty(
    critic: Critic,
    real: Tensor,
    *,
    weight: float = 10.0,
    scaler: Optional[Any] = None,
    reduction: str = "mean",
) -> Tensor:
    r"""R1 penalty (Mescheder et al. 2018): the squared input-gradient norm at real samples.

    .. math:: \ell_b = \frac{\gamma}{2} \lVert \nabla_x D(x^{r})_b \rVert_2^2

    ``weight`` is the paper's :math:`\gamma` (the :math:`\gamma / 2` convention, as in
    StyleGAN). ``real`` is detached and a copy made to require grad inside: the caller's
    tensor keeps its ``requires_grad`` flag.

    Args:
        critic: callable mapping a batch (B, ...) to scores (B,) or (B, 1).
        real: real samples (B, ...), floating point, rank >= 1.
        weight: :math:`\gamma \ge 0`.
        scaler: the loop's ``torch.amp.GradScaler`` under mixed precision, or ``None``.
        reduction: ``"mean" | "sum" | "none"`` over the batch; ``none`` returns (B,).

    >>> import torch
    >>> r1_penalty(lambda x: x @ torch.tensor([3.0, 4.0]), torch.randn(8, 2))
    tensor(125.)
    """
    fn = "r1_penalty"
    _check_inputs(fn, critic, "real", real)
    weight = check_float(fn, "weight", weight, low=0.0)
    check_reduction(fn, reduction)
    _check_scaler(fn, scaler)
    grad = _input_grad(fn, critic, real, scaler)
    return reduce(_squared_norm_penalty(grad, weight), reduction, out_dtype=output_dtype(real))


def r2_penalty(
    critic: Critic,
    fake: Tensor,
    *,
    weight: float = 10.0,
    scaler: Optional[Any] = None,
    reduction: str = "mean",
) -> Tensor:
    r"""R2 penalty (Mescheder et al. 2018): the squared input-gradient norm at fake samples.

    .. math:: \ell_b = \frac{\gamma}{2} \lVert \nabla_x D(x^{f})_b \rVert_2^2

    Same conventions as :func:`r1_penalty`; ``fake`` is detached (the generator is not
    trained through the penalty).

    Args:
        critic: callable mapping a batch (B, ...) to scores (B,) or (B, 1).
        fake: generated samples (B, ...), floating point, rank >= 1.
        weight: :math:`\gamma \ge 0`.
        scaler: the loop's ``torch.amp.GradScaler`` under mixed precision, or ``None``.
        reduction: ``"mean" | "sum" | "none"`` over the batch; ``none`` returns (B,).

    >>> import torch
    >>> fake = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    >>> r2_penalty(lambda x: (x * x).sum(1), fake, weight=1.0, reduction="none").tolist()
    [2.0, 8.0]
    """
    fn = "r2_penalty"
    _check_inputs(fn, critic, "fake", fake)
    weight = check_float(fn, "weight", weight, low=0.0)
    check_reduction(fn, reduction)
    _check_scaler(fn, scaler)
    grad = _input_grad(fn, critic, fake, scaler)
    return reduce(_squared_norm_penalty(grad, weight), reduction, out_dtype=output_dtype(fake))


def dragan_penalty(
    critic: Critic,
    real: Tensor,
    *,
    weight: float = 10.0,
    target_norm: float = 1.0,
    perturb: float = 0.5,
    generator: Optional[torch.Generator] = None,
    scaler: Optional[Any] = None,
    reduction: str = "mean",
) -> Tensor:
    r"""DRAGAN penalty (Kodali et al. 2017): WGAN-GP around noisy copies of real samples.

    .. math::
        x^{p} = x^{r} + c\,\sigma\,u, \quad
        \hat x_b = x^{r}_b + \alpha_b (x^{p}_b - x^{r}_b), \quad
        \ell_b = \lambda \bigl(\lVert \nabla_x D(\hat x)_b \rVert_2 - t\bigr)^2

    with :math:`u \sim U[0, 1)` elementwise, :math:`\alpha_b \sim U[0, 1)` per sample and
    :math:`\sigma` the standard deviation of **the whole batch** ``real`` (one scalar,
    population form, ``correction=0``). That is the authors' reference code
    (github.com/kodalinaveen3/DRAGAN, ``get_perturbed_batch``: ``minibatch + 0.5 *
    minibatch.std() * np.random.random(minibatch.shape)``, NumPy's std over all
    elements, ddof 0); a per-feature std would leave constant features (image borders)
    unperturbed and every feature of a batch of one. The noise is one-sided
    (:math:`u \ge 0`), as there.
    ``u`` is drawn first, then ``alpha``, both from ``generator`` when given.

    Args:
        critic: callable mapping a batch (B, ...) to scores (B,) or (B, 1).
        real: real samples (B, ...), floating point, rank >= 1.
        weight: :math:`\lambda \ge 0`.
        target_norm: :math:`t \ge 0`.
        perturb: :math:`c > 0`, the noise scale in batch standard deviations.
        generator: ``torch.Generator`` for the draws of ``u`` and ``alpha``.
        scaler: the loop's ``torch.amp.GradScaler`` under mixed precision, or ``None``.
        reduction: ``"mean" | "sum" | "none"`` over the batch; ``none`` returns (B,).

    >>> import torch
    >>> dragan_penalty(lambda x: x @ torch.tensor([3.0, 4.0]), torch.randn(8, 2), weight=1.0)
    tensor(16.)
    """
    fn = "dragan_penalty"
    _check_inputs(fn, critic, "real", real)
    weight, target_norm, _ = _check_gp_options(fn, weight, target_norm)
    perturb = _check_perturb(fn, perturb)
    check_reduction(fn, reduction)
    _check_scaler(fn, scaler)
    generator = _check_generator(fn, generator, real)
    noise = torch.rand(real.shape, generator=generator, dtype=real.dtype, device=real.device)
    alpha = torch.rand(
        _batch_shape(real), generator=generator, dtype=real.dtype, device=real.device
    )
    with torch.no_grad():
        # An empty batch has no std (torch warns and returns NaN); nothing is perturbed.
        sigma = upcast(real).std(correction=0).to(real.dtype) if real.numel() else 0.0
        x_p = real + perturb * sigma * noise
        x_hat = real + alpha * (x_p - real)
    grad = _input_grad(fn, critic, x_hat, scaler)
    loss = _norm_penalty(grad, weight, target_norm, False)
    return reduce(loss, reduction, out_dtype=output_dtype(real))


# ------------------------------------------------------------------------------ modules
class GradientPenalty(nn.Module):
    """WGAN-GP gradient penalty as a module: ``GradientPenalty()(critic, real, fake)``.

    The constructor takes the hyperparameters of :func:`gradient_penalty`; ``alpha``,
    ``generator`` and ``scaler`` are per-call arguments of ``forward``.
    """

    def __init__(
        self,
        *,
        weight: float = 10.0,
        target_norm: float = 1.0,
        one_sided: bool = False,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        fn = type(self).__name__
        self.weight, self.target_norm, self.one_sided = _check_gp_options(
            fn, weight, target_norm, one_sided
        )
        self.reduction = check_reduction(fn, reduction)

    def forward(
        self,
        critic: Critic,
        real: Tensor,
        fake: Tensor,
        *,
        alpha: Optional[Tensor] = None,
        generator: Optional[torch.Generator] = None,
        scaler: Optional[Any] = None,
    ) -> Tensor:
        return gradient_penalty(
            critic,
            real,
            fake,
            weight=self.weight,
            target_norm=self.target_norm,
            one_sided=self.one_sided,
            alpha=alpha,
            generator=generator,
            scaler=scaler,
            reduction=self.reduction,
        )

    def extra_repr(self) -> str:
        return (
            f"weight={self.weight}, target_norm={self.target_norm}, "
            f"one_sided={self.one_sided}, reduction={self.reduction!r}"
        )


class _SquaredNormPenalty(nn.Module):
    """Shared constructor of the R1 / R2 modules."""

    def __init__(self, *, weight: float = 10.0, reduction: str = "mean") -> None:
        super().__init__()
        fn = type(self).__name__
        self.weight = check_float(fn, "weight", weight, low=0.0)
        self.reduction = check_reduction(fn, reduction)

    def extra_repr(self) -> str:
        return f"weight={self.weight}, reduction={self.reduction!r}"


class R1Penalty(_SquaredNormPenalty):
    """R1 penalty as a module: ``R1Penalty(weight=gamma)(critic, real)``."""

    def forward(self, critic: Critic, real: Tensor, *, scaler: Optional[Any] = None) -> Tensor:
        return r1_penalty(critic, real, weight=self.weight, scaler=scaler, reduction=self.reduction)


class R2Penalty(_SquaredNormPenalty):
    """R2 penalty as a module: ``R2Penalty(weight=gamma)(critic, fake)``."""

    def forward(self, critic: Critic, fake: Tensor, *, scaler: Optional[Any] = None) -> Tensor:
        return r2_penalty(critic, fake, weight=self.weight, scaler=scaler, reduction=self.reduction)


class DRAGANPenalty(nn.Module):
    """DRAGAN penalty as a module: ``DRAGANPenalty()(critic, real)``.

    The constructor takes the hyperparameters of :func:`dragan_penalty`; ``generator``
    and ``scaler`` are per-call arguments of ``forward``.
    """

    def __init__(
        self,
        *,
        weight: float = 10.0,
        target_norm: float = 1.0,
        perturb: float = 0.5,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        fn = type(self).__name__
        self.weight, self.target_norm, _ = _check_gp_options(fn, weight, target_norm)
        self.perturb = _check_perturb(fn, perturb)
        self.reduction = check_reduction(fn, reduction)

    def forward(
        self,
        critic: Critic,
        real: Tensor,
        *,
        generator: Optional[torch.Generator] = None,
        scaler: Optional[Any] = None,
    ) -> Tensor:
        return dragan_penalty(
            critic,
            real,
            weight=self.weight,
            target_norm=self.target_norm,
            perturb=self.perturb,
            generator=generator,
            scaler=scaler,
            reduction=self.reduction,
        )

    def extra_repr(self) -> str:
        return (
            f"weight={self.weight}, target_norm={self.target_norm}, "
            f"perturb={self.perturb}, reduction={self.reduction!r}"
        )
