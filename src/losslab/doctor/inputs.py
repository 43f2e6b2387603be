"""Realistic, seeded inputs for ``losslab check``: :func:`build_context`.

A *task* fixes the shapes and dtypes of a loss's two inputs (the prediction comes first):

* binary: ``(B,)`` logits (default) or probs; ``(B,)`` float 0/1 targets;
* multiclass: ``(B, C)`` logits (default) or probs; ``(B,)`` int64 class ids;
* multilabel: ``(B, C)`` logits (default) or probs; ``(B, C)`` float 0/1 targets;
* regression: ``(B,)`` values (``(B, D)`` with ``make_sample(size=D)``); same-shape float targets;
* segmentation: ``(B, C, H, W)`` logits (default) or probs; ``(B, H, W)`` int64 class ids;
* ranking: ``(B, n)`` scores; ``(B, n)`` float graded relevance 0..4;
* forecasting: ``(B, T)`` values; ``(B, T)`` float targets.

The predictions carry some skill (they correlate with the targets, the way a model's outputs
do after a little training), every generator draws from its own seeded ``torch.Generator``
(the global RNG is never touched) and the same seed always gives the same tensors.

``make_sample(batch=, size=, dtype=, device=, seed=)``: ``size`` is the per-sample extent
that grows a problem: the number of classes (multiclass, multilabel), the side ``H = W``
(segmentation), the list length (ranking), the horizon (forecasting), a trailing feature
dimension (regression and binary: ``size=None`` keeps them 1-D). ``dtype`` applies to every
floating tensor of the sample (targets and keyword tensors too, as a caller would cast them).

When the user passes a sample, everything is derived from it: the canonical sample is theirs
as given, the other realistic samples perturb its prediction (seeded), ``make_sample(batch=)``
tiles its rows (seed 0) or draws them with replacement (other seeds; ``size`` is ignored:
nothing says what it would mean),
and the edge and extreme samples keep its shapes and dtypes.

Edge samples are inputs that happen in training and that naive code gets wrong: all-negative
targets, a single-element batch, lists with no valid pair, and, when the function's signature
accepts the keyword (``mask``, ``ignore_index``, ``sample_weight``), an empty mask, every
target ignored, every sample weight zero. Extreme samples saturate the prediction: logits of
+-30, +-100 and +-1e4, probabilities exactly 0 and 1, values of magnitude 1e4.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Mapping
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from losslab._checks import suggest
from losslab.doctor._call import bounded_call
from losslab.doctor._types import Context, Sample

__all__ = [
    "ALLOWED_KINDS",
    "DEFAULT_KIND",
    "INPUT_KINDS",
    "TASKS",
    "build_context",
    "call_keywords",
    "check_input_kind",
    "check_task",
    "default_of",
]

TASKS = (
    "binary",
    "multiclass",
    "multilabel",
    "regression",
    "segmentation",
    "ranking",
    "forecasting",
)
INPUT_KINDS = ("logits", "probs", "values", "scores")
DEFAULT_KIND = {
    "binary": "logits",
    "multiclass": "logits",
    "multilabel": "logits",
    "regression": "values",
    "segmentation": "logits",
    "ranking": "scores",
    "forecasting": "values",
}
ALLOWED_KINDS = {
    "binary": ("logits", "probs"),
    "multiclass": ("logits", "probs"),
    "multilabel": ("logits", "probs"),
    "regression": ("values",),
    "segmentation": ("logits", "probs"),
    "ranking": ("scores", "logits"),
    "forecasting": ("values",),
}
# Tasks whose mean loss is a mean of independent per-sample terms: splitting or permuting the
# batch must not change it. Segmentation and ranking losses may use global statistics.
BATCH_INVARIANT = {"binary", "multiclass", "multilabel", "regression", "forecasting"}

# Default sizes: small enough that a dozen probes with a few calls each stay well under a
# second on CPU, large enough that a batch can be split and every class shows up.
BATCH = {
    "binary": 16,
    "multiclass": 16,
    "multilabel": 8,
    "regression": 16,
    "segmentation": 4,
    "ranking": 4,
    "forecasting": 4,
}
SIZE = {"multiclass": 5, "multilabel": 4, "segmentation": 8, "ranking": 8, "forecasting": 12}
SEG_CLASSES = 3
MAX_RELEVANCE = 4
ODD_BATCH = {"segmentation": 3, "ranking": 3, "forecasting": 3}  # the third realistic sample
PERFECT_MARGIN = 20.0  # logit of a perfect prediction: sigmoid(20) = 1 - 2e-9
PROB_INSET = 1e-4  # perfect probabilities stay this far inside (0, 1)
EXTREME_LOGITS = (30.0, 100.0, 1e4)
EXTREME_VALUE = 1e4
IGNORE_DEFAULT = {"segmentation": 255}  # other tasks: -100 (torch's default)

Generator = torch.Generator


# ------------------------------------------------------------------------- argument checks
def check_task(task: Any) -> str:
    """``task`` must be one of :data:`TASKS` (ValueError with a did-you-mean otherwise)."""
    if not isinstance(task, str):
        raise TypeError(f"check(): `task` must be a string ({', '.join(TASKS)}); got {task!r}.")
    if task not in TASKS:
        hint = suggest(task, TASKS)
        raise ValueError(
            f"check(): `task` must be one of {', '.join(TASKS)}; got {task!r}."
            + (f" {hint}" if hint else "")
        )
    return task


def check_input_kind(task: str, input_kind: Any) -> str:
    """The task's default kind for ``None``; otherwise one of the kinds the task allows."""
    if input_kind is None:
        return DEFAULT_KIND[task]
    if not isinstance(input_kind, str):
        raise TypeError(f"check(): `input_kind` must be a string; got {input_kind!r}.")
    allowed = ALLOWED_KINDS[task]
    if input_kind not in allowed:
        hint = suggest(input_kind, allowed)
        raise ValueError(
            f"check(): `input_kind` must be one of {', '.join(allowed)} for task {task!r}; "
            f"got {input_kind!r}." + (f" {hint}" if hint else "")
        )
    return input_kind


def _check_timeout(timeout: Any) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"check(): `timeout` must be a number of seconds; got {timeout!r}.")
    if not (math.isfinite(timeout) and timeout > 0):
        raise ValueError(
            f"check(): `timeout` must be a positive number of seconds; got {timeout!r}."
        )
    return float(timeout)


def _as_sample(sample: Any) -> Sample:
    """A :class:`Sample` from a Sample or a ``(pred, target)`` / ``(pred, target, kwargs)``."""
    if isinstance(sample, Sample):
        pred, target, kwargs, note = sample.pred, sample.target, sample.kwargs, sample.note
    elif isinstance(sample, (tuple, list)) and len(sample) in (2, 3):
        pred, target = sample[0], sample[1]
        kwargs = sample[2] if len(sample) == 3 else {}
        note = ""
    else:
        raise TypeError(
            "check(): `sample` must be a (pred, target) tuple of tensors, a (pred, target, "
            f"kwargs) tuple or a losslab.doctor.Sample; got {type(sample).__name__}."
        )
    for name, x in (("pred", pred), ("target", target)):
        if not isinstance(x, Tensor):
            raise TypeError(
                f"check(): `sample` {name} must be a torch.Tensor; got {type(x).__name__}."
            )
    if not pred.is_floating_point():
        raise TypeError(
            f"check(): `sample` pred must be a floating-point tensor; got dtype "
            f"{str(pred.dtype).replace('torch.', '')}."
        )
    if pred.dim() == 0 or pred.shape[0] == 0:
        raise ValueError(
            f"check(): `sample` pred must have a non-empty batch dimension; got shape "
            f"{tuple(pred.shape)}."
        )
    if not isinstance(kwargs, Mapping) or not all(isinstance(k, str) for k in kwargs):
        raise TypeError(
            f"check(): `sample` kwargs must be a dict of keyword arguments; got "
            f"{type(kwargs).__name__}."
        )
    # Copies: a function that writes into its inputs must not change the user's tensors,
    # nor the sample the next probe starts from.
    return Sample(
        pred.detach().clone(),
        target.detach().clone(),
        {k: v.detach().clone() if isinstance(v, Tensor) else v for k, v in kwargs.items()},
        note or "your sample",
    )


# ---------------------------------------------------------------------- signature helpers
def _signature(fn: Callable[..., Any]) -> Optional[inspect.Signature]:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):
        return None


def call_keywords(fn: Callable[..., Any]) -> frozenset[str]:
    """Keyword arguments ``fn`` accepts per call, beyond the first two (named explicitly: a
    ``**kwargs`` accepts nothing in particular). A losslab ``Loss`` module accepts its
    function's per-call arguments (``sample_weight``, ``mask``, ...), not its hyperparameters."""
    call_arguments = getattr(type(fn), "call_arguments", None)
    if isinstance(fn, torch.nn.Module) and callable(call_arguments):
        try:
            return frozenset(call_arguments())
        except Exception:  # a user's class with an unrelated `call_arguments`
            pass
    sig = _signature(fn)
    if sig is None:
        return frozenset()
    names = []
    positional = 0
    for p in sig.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and positional < 2:
            positional += 1
            continue
        if p.kind is not p.POSITIONAL_ONLY:
            names.append(p.name)
    return frozenset(names)


def default_of(fn: Callable[..., Any], name: str) -> Any:
    """The default of ``fn``'s parameter ``name`` (``inspect.Parameter.empty`` when none)."""
    sig = _signature(fn)
    if sig is None or name not in sig.parameters:
        return inspect.Parameter.empty
    return sig.parameters[name].default


# ------------------------------------------------------------------------------ generators
def _gen(seed: int) -> Generator:
    return torch.Generator().manual_seed(int(seed))


def _binary_targets(shape: tuple[int, ...], g: Generator, rate: float) -> Tensor:
    t = (torch.rand(shape, generator=g) < rate).float()
    flat = t.view(-1)
    if flat.numel() >= 2:  # both classes present in every realistic sample
        flat[0], flat[1] = 1.0, 0.0
    return t


def _skilled_logits(t: Tensor, g: Generator) -> Tensor:
    """Logits that lean towards the 0/1 target, with noise: a model after a little training."""
    return 1.5 * (2 * t - 1) + torch.randn(t.shape, generator=g)


def _generate(task: str, kind: str, batch: int, size: Optional[int], seed: int) -> Sample:
    """A realistic float32 CPU sample (see the module docstring for the shapes)."""
    g = _gen(seed)
    if task in ("binary", "multilabel"):
        shape = (batch,) if task == "binary" and size is None else (batch, size or SIZE[task])
        t = _binary_targets(shape, g, 0.4 if task == "binary" else 0.3)
        x = _skilled_logits(t, g)
        pred = torch.sigmoid(x) if kind == "probs" else x
        what = f"{task} {kind}"
    elif task == "multiclass":
        c = size or SIZE[task]
        t = torch.randint(0, c, (batch,), generator=g)
        if batch >= c:  # every class present
            t[:c] = torch.randperm(c, generator=g)
        x = torch.randn(batch, c, generator=g) + 2.0 * F.one_hot(t, c).float()
        pred = torch.softmax(x, 1) if kind == "probs" else x
        what = f"multiclass {kind}, {c} classes"
    elif task == "segmentation":
        side = size or SIZE[task]
        t = _blobs(batch, side, SEG_CLASSES, g)
        x = torch.randn(batch, SEG_CLASSES, side, side, generator=g)
        x = x + 2.0 * F.one_hot(t, SEG_CLASSES).movedim(-1, 1).float()
        pred = torch.softmax(x, 1) if kind == "probs" else x
        what = f"segmentation {kind}, {SEG_CLASSES} classes, {side}x{side}"
    elif task == "regression":
        shape = (batch,) if size is None else (batch, size)
        t = 2.0 * torch.randn(shape, generator=g) + 1.0
        pred = t + 0.5 * torch.randn(shape, generator=g)
        what = "regression values"
    elif task == "ranking":
        n = size or SIZE[task]
        t = torch.randint(0, MAX_RELEVANCE + 1, (batch, n), generator=g).float()
        t[:, 0] = torch.maximum(t[:, 0], torch.ones(()))  # a relevant item in every list
        t[:, 1] = 0.0  # and an irrelevant one: every list has valid pairs
        pred = 0.5 * t + torch.randn(batch, n, generator=g)
        what = f"ranking scores, lists of {n}, relevance 0..{MAX_RELEVANCE}"
    elif task == "forecasting":
        horizon = size or SIZE[task]
        steps = torch.arange(horizon, dtype=torch.float32)
        level = 0.5 + 1.5 * torch.rand(batch, 1, generator=g)
        amp = 0.5 + torch.rand(batch, 1, generator=g)
        phase = 2 * math.pi * torch.rand(batch, 1, generator=g)
        t = level + amp * torch.sin(2 * math.pi * steps / 6 + phase)
        t = t + 0.2 * torch.randn(batch, horizon, generator=g)
        pred = t + 0.3 * torch.randn(batch, horizon, generator=g)
        what = f"forecasting values, horizon {horizon}"
    else:  # pragma: no cover - check_task ran first
        raise ValueError(task)
    return Sample(pred, t, {}, f"realistic {what}, batch {batch}, seed {seed}")


def _blobs(batch: int, side: int, classes: int, g: Generator) -> Tensor:
    """(B, H, W) class ids: background with one rectangle per foreground class per image."""
    t = torch.zeros(batch, side, side, dtype=torch.int64)
    for b in range(batch):
        for c in range(1, classes):
            h, w = (int(v) for v in torch.randint(1, max(2, side // 2 + 1), (2,), generator=g))
            top = int(torch.randint(0, side - h + 1, (1,), generator=g))
            left = int(torch.randint(0, side - w + 1, (1,), generator=g))
            t[b, top : top + h, left : left + w] = c
    return t


# ---------------------------------------------------------------------------- transforms
def _cast(x: Any, dtype: Optional[torch.dtype], device: Any) -> Any:
    if not isinstance(x, Tensor):
        return x
    if dtype is not None and x.is_floating_point():
        x = x.to(dtype)
    if device is not None:
        x = x.to(device)
    return x


def _to(sample: Sample, dtype: Optional[torch.dtype], device: Any) -> Sample:
    if dtype is None and device is None:
        return sample
    return Sample(
        _cast(sample.pred, dtype, device),
        _cast(sample.target, dtype, device),
        {k: _cast(v, dtype, device) for k, v in sample.kwargs.items()},
        sample.note,
    )


def _rows(sample: Sample, index: Tensor, note: str) -> Sample:
    """The rows ``index`` of every batched tensor of the sample (dim 0 = the batch)."""
    n = sample.pred.shape[0]

    def take(x: Any) -> Any:
        if isinstance(x, Tensor) and x.dim() >= 1 and x.shape[0] == n:
            return x[index.to(x.device)]
        return x

    return Sample(
        take(sample.pred), take(sample.target), {k: take(v) for k, v in sample.kwargs.items()}, note
    )


def _perturb(sample: Sample, kind: str, seed: int) -> Sample:
    """The user's sample with its prediction moved by seeded noise (10 % of its spread)."""
    g = _gen(seed)
    p = sample.pred.detach()
    noise = torch.randn(p.shape, generator=g, dtype=torch.float64)
    if kind == "probs":
        if p.dim() >= 2 and bool(
            torch.allclose(p.sum(1).double(), torch.ones((), dtype=torch.float64), atol=1e-3)
        ):
            z = torch.log(p.double().clamp_min(1e-6)) + 0.3 * noise.to(p.device)
            new = torch.softmax(z, 1)
        else:
            z = torch.logit(p.double().clamp(1e-6, 1 - 1e-6)) + 0.3 * noise.to(p.device)
            new = torch.sigmoid(z)
    else:
        spread = float(p.double().std()) if p.numel() > 1 else 1.0
        spread = spread if math.isfinite(spread) and spread > 0 else 1.0
        new = p.double() + 0.1 * spread * noise.to(p.device)
    return Sample(
        new.to(p.dtype), sample.target, sample.kwargs, f"your sample, perturbed (seed {seed})"
    )


# ------------------------------------------------------------------------- perfect inputs
def _perfect(task: str, kind: str, sample: Sample) -> Tensor:
    """A perfect prediction for ``sample``'s target, in the prediction's shape and dtype."""
    pred, t = sample.pred, sample.target
    dtype = pred.dtype if pred.is_floating_point() else torch.float32
    if kind == "values" or task in ("regression", "forecasting"):
        return t.detach().to(dtype).clone()
    if task == "ranking":
        return t.detach().to(dtype).clone()  # scores = relevance: the ideal order
    if task in ("multiclass", "segmentation") and not t.is_floating_point():
        c = pred.shape[1] if pred.dim() >= 2 else 1
        valid = (t >= 0) & (t < c)
        hot = F.one_hot(torch.where(valid, t, torch.zeros_like(t)).long(), c).movedim(-1, 1)
        hot = hot * valid.unsqueeze(1)  # ignored positions: no preference
        hot = hot.to(dtype)
        if kind == "probs":
            return (hot * (1 - c * PROB_INSET) + PROB_INSET).to(dtype)
        return PERFECT_MARGIN * (2 * hot - 1)
    # 0/1 targets (binary, multilabel, one-hot segmentation): the target's sign
    y = t.detach().to(dtype).clamp(0, 1)
    if y.shape != pred.shape and y.numel() == pred.numel():
        y = y.reshape(pred.shape)
    if kind == "probs":
        return y * (1 - 2 * PROB_INSET) + PROB_INSET
    return PERFECT_MARGIN * (2 * y - 1)


# ---------------------------------------------------------------------------- edge samples
def _ignore_value(fn: Callable[..., Any], task: str) -> int:
    default = default_of(fn, "ignore_index")
    if isinstance(default, int) and not isinstance(default, bool):
        return default
    return IGNORE_DEFAULT.get(task, -100)


def _edges(fn: Callable[..., Any], task: str, base: Sample) -> list[Sample]:
    keywords = call_keywords(fn)
    p, t, kw = base.pred, base.target, dict(base.kwargs)
    out: list[Sample] = []

    def add(pred: Tensor, target: Tensor, note: str, **extra: Any) -> None:
        out.append(Sample(pred.clone(), target.clone(), {**kw, **extra}, note))

    # the target with nothing to find
    if task in ("binary", "multilabel"):
        add(p, torch.zeros_like(t), "all targets negative (0)")
        add(p, torch.ones_like(t), "all targets positive (1)")
    elif task == "multiclass":
        add(p, torch.zeros_like(t), "every target the same class (0)")
    elif task == "segmentation":
        add(p, torch.zeros_like(t), "all background (class 0 everywhere: empty foreground)")
    elif task == "ranking":
        add(p, torch.zeros_like(t), "all relevance 0 (no relevant item, no valid pair)")
        add(p, torch.full_like(t, 2), "all relevance equal (2): no valid pair")
    elif task in ("regression", "forecasting"):
        add(p, torch.zeros_like(t), "all targets zero")
    out.append(_rows(base, torch.arange(1), "a single-element batch"))

    # keyword edges, only for the keywords the function accepts
    if "mask" in keywords and "mask" not in kw:
        add(
            p,
            t,
            "empty mask (every position masked out)",
            mask=torch.zeros(t.shape, dtype=torch.bool, device=t.device),
        )
        if task == "ranking" and t.dim() == 2 and t.shape[1] >= 4:
            m = torch.ones(t.shape, dtype=torch.bool, device=t.device)
            m[:, -3:] = False  # padded lists
            m[0, 1:] = False  # a list with one real item
            add(p, t, "padded lists (mask), one list with a single item", mask=m)
    if "ignore_index" in keywords and "ignore_index" not in kw and task != "ranking":
        v = _ignore_value(fn, task)
        add(p, torch.full_like(t, v), f"all targets ignored (ignore_index={v})", ignore_index=v)
        some = t.clone()
        some.view(-1)[::3] = v
        add(p, some, f"a third of the targets ignored (ignore_index={v})", ignore_index=v)
    if "sample_weight" in keywords and "sample_weight" not in kw:
        zeros = torch.zeros(p.shape[0], dtype=p.dtype, device=p.device)
        add(p, t, "every sample weight zero", sample_weight=zeros)
    return out


# ------------------------------------------------------------------------- extreme samples
def _extremes(task: str, kind: str, base: Sample) -> list[Sample]:
    g = _gen(4242)
    p, t, kw = base.pred, base.target, dict(base.kwargs)
    dtype, device = p.dtype, p.device
    out: list[Sample] = []

    def rand_sign() -> Tensor:
        return (torch.randint(0, 2, p.shape, generator=g) * 2 - 1).to(dtype).to(device)

    def rand_onehot() -> Tensor:  # along dim 1, a random class per position
        c = p.shape[1]
        ids = torch.randint(0, c, (p.shape[0], *p.shape[2:]), generator=g)
        return F.one_hot(ids, c).movedim(-1, 1).to(dtype).to(device)

    per_class = (
        task in ("multiclass", "segmentation") and p.dim() >= 2 and not t.is_floating_point()
    )
    if kind == "logits":
        for m in EXTREME_LOGITS:
            if per_class:
                x = m * (2 * rand_onehot() - 1)
                note = f"saturated logits (+{m:g} at one random class, -{m:g} elsewhere)"
            else:
                x = m * rand_sign()
                note = f"saturated logits +-{m:g} (random signs: half confidently wrong)"
            out.append(Sample(x, t.clone(), kw, note))
    elif kind == "probs":
        if per_class:
            x = rand_onehot()
            note = "probabilities exactly 0 and 1 (one-hot at a random class)"
        else:
            x = (rand_sign() > 0).to(dtype)
            note = "probabilities exactly 0 and 1 (half confidently wrong)"
        out.append(Sample(x, t.clone(), kw, note))
        if not per_class:
            y = t.to(dtype).clamp(0, 1) if t.shape == p.shape else x
            out.append(
                Sample(y.clone(), t.clone(), kw, "probabilities exactly equal to the 0/1 targets")
            )
    elif kind == "scores":
        out.append(Sample(30.0 * rand_sign(), t.clone(), kw, "scores +-30 (random signs, ties)"))
        spread = EXTREME_VALUE * (2 * torch.rand(p.shape, generator=g) - 1)
        out.append(Sample(spread.to(dtype).to(device), t.clone(), kw, "scores spread over +-1e4"))
    else:  # values
        out.append(
            Sample(EXTREME_VALUE * rand_sign(), t.clone(), kw, "predictions of magnitude 1e4")
        )
        if t.is_floating_point():
            big = EXTREME_VALUE * rand_sign()
            out.append(
                Sample(
                    big,
                    (-big if t.shape == big.shape else t).clone(),
                    kw,
                    "predictions and targets of magnitude 1e4 (opposite signs)",
                )
            )
    return out


# ------------------------------------------------------------------------------- context
class _Exited(Exception):
    """The checked function called ``sys.exit()``: reported like any other exception."""


class _DoctorContext(Context):
    """A :class:`Context` whose calls contain ``SystemExit`` and leave grad mode and the
    default dtype as they found them (a function that changes them must not poison the
    rest of the probe)."""

    def call(self, pred: Tensor, target: Tensor, **kwargs: Any) -> Any:
        fn = self.fn

        def guarded(*args: Any, **kw: Any) -> Any:
            try:
                return fn(*args, **kw)
            except SystemExit as exc:
                raise _Exited(f"the function called sys.exit({exc.code!r})") from None

        grad, dtype = torch.is_grad_enabled(), torch.get_default_dtype()
        try:
            return bounded_call(guarded, (pred, target), kwargs, timeout=self.timeout)
        finally:
            torch.set_grad_enabled(grad)
            torch.set_default_dtype(dtype)


def build_context(
    fn: Callable[..., Any],
    *,
    task: str,
    input_kind: Optional[str] = None,
    sample: Any = None,
    timeout: float = 10.0,
) -> Context:
    """The :class:`~losslab.doctor.Context` the probes run on: ``fn`` and realistic inputs.

    Args:
        fn: the loss, a function or an ``nn.Module`` called as ``fn(pred, target, **kwargs)``.
        task: ``binary | multiclass | multilabel | regression | segmentation | ranking |
            forecasting``; it fixes the shapes and dtypes (see the module docstring).
        input_kind: what ``pred`` is: ``logits | probs`` for the classification tasks and
            segmentation (default ``logits``), ``values`` for regression and forecasting,
            ``scores`` for ranking (the defaults).
        sample: optional ``(pred, target)`` (or ``(pred, target, kwargs)``, or a
            :class:`~losslab.doctor.Sample`): every input is then derived from it.
        timeout: seconds one call of ``fn`` may take.

    Raises:
        ValueError: unknown task or input kind (with a did-you-mean), a non-positive timeout.
        TypeError: ``fn`` not callable, ``sample`` of the wrong type.

    >>> import torch
    >>> from losslab.functional import mse_loss
    >>> ctx = build_context(mse_loss, task="regression")
    >>> ctx.input_kind, tuple(ctx.samples[0].pred.shape), ctx.has_reduction, ctx.batch_invariant
    ('values', (16,), True, True)
    >>> s = ctx.make_sample(batch=3, size=2, dtype=torch.float64, seed=7)
    >>> tuple(s.pred.shape), s.pred.dtype
    ((3, 2), torch.float64)
    >>> ctx.call(s.target, s.target)
    tensor(0., dtype=torch.float64)
    """
    if not callable(fn):
        raise TypeError(
            f"check(): `fn` must be a callable loss (a function or an nn.Module); got "
            f"{type(fn).__name__}."
        )
    task = check_task(task)
    kind = check_input_kind(task, input_kind)
    timeout = _check_timeout(timeout)
    user = _as_sample(sample) if sample is not None else None

    if user is None:

        def make_sample(
            batch: Optional[int] = None,
            size: Optional[int] = None,
            dtype: Optional[torch.dtype] = None,
            device: Any = None,
            seed: int = 0,
        ) -> Sample:
            """A realistic sample of the task (float32 on the CPU unless told otherwise)."""
            b = BATCH[task] if batch is None else int(batch)
            if b < 1 or (size is not None and int(size) < 1):
                raise ValueError(
                    f"make_sample(): `batch` and `size` must be >= 1; got {batch}, {size}."
                )
            s = _generate(task, kind, b, None if size is None else int(size), seed)
            return _to(s, dtype, device)

        samples = [
            make_sample(seed=0),
            make_sample(seed=1),
            make_sample(seed=2, batch=ODD_BATCH.get(task, 5)),
        ]
        base = make_sample(seed=3)
    else:
        user_sample = user

        def make_sample(
            batch: Optional[int] = None,
            size: Optional[int] = None,
            dtype: Optional[torch.dtype] = None,
            device: Any = None,
            seed: int = 0,
        ) -> Sample:
            """The user's sample (seed 0), perturbed (other seeds), ``batch`` rows of it."""
            s = user_sample if seed == 0 else _perturb(user_sample, kind, seed)
            if batch is not None and int(batch) != s.pred.shape[0]:
                n = s.pred.shape[0]
                if int(batch) < 1:
                    raise ValueError(f"make_sample(): `batch` must be >= 1; got {batch}.")
                index = (
                    torch.arange(int(batch)) % n
                    if seed == 0
                    else torch.randint(0, n, (int(batch),), generator=_gen(seed))
                )
                s = _rows(s, index, f"{s.note}, {int(batch)} rows")
            return _to(s, dtype, device)

        samples = [user_sample, make_sample(seed=1), make_sample(seed=2)]
        base = user_sample

    return _DoctorContext(
        fn=fn,
        task=task,
        input_kind=kind,
        samples=samples,
        edge_samples=_edges(fn, task, base),
        extreme_samples=_extremes(task, kind, base),
        make_sample=make_sample,
        has_reduction="reduction" in call_keywords(fn),
        batch_invariant=task in BATCH_INVARIANT,
        perfect=functools.partial(_perfect, task, kind),
        baseline=_baseline(task, kind),
        timeout=timeout,
    )


def _baseline(task: str, kind: str) -> Optional[Callable[..., Any]]:
    """The task's built-in losslab loss, called like the user's (performance probe)."""
    import losslab.functional as LF

    if task in ("binary", "multilabel"):
        return LF.bce_probs_loss if kind == "probs" else LF.bce_with_logits_loss
    if task == "multiclass":
        return LF.cross_entropy_loss
    if task == "segmentation":
        activation = None if kind == "probs" else "softmax"
        return functools.partial(LF.dice_loss, mode="multiclass", activation=activation)
    if task == "ranking":
        return LF.ranknet_loss
    if task == "forecasting":
        return LF.wape_loss
    return LF.mse_loss
