"""The planted-bug zoo: small custom losses, each with one classic bug, and the probes that must flag it.

Every entry is a few lines written for the test, the way people write losses in the wild: a
``(pred, target)`` function for one task and input kind, with ONE planted bug of a named class
(see :data:`BUG_CLASSES`). ``probes`` lists the doctor's probes that must report the bug at
severity ``warning`` or above; the entry counts as detected when at least one of them does.
A few entries carry a ``twin``: the fixed version, which those probes must pass.

Conventions of the generated inputs (losslab.doctor.inputs): binary ``(B,)`` logits or probs and
float 0/1 targets; multiclass ``(B, C)`` and int64 ids; multilabel ``(B, C)`` and float 0/1;
regression ``(B,)`` values (or ``(B, T, F)`` for the weight-axis trap); segmentation
``(B, C, H, W)`` logits and ``(B, H, W)`` ids; ranking ``(B, n)`` scores and graded relevance;
forecasting ``(B, T)`` values. The functions below stay shape-agnostic where they can.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["BUG_CLASSES", "ENTRIES", "ZooEntry", "by_name"]


@dataclass(frozen=True)
class ZooEntry:
    name: str
    fn: Callable[..., Any]
    task: str
    input_kind: str
    bug: str  # a key of BUG_CLASSES
    probes: tuple[str, ...]  # any one of them must report >= warning
    twin: Optional[Callable[..., Any]] = None  # the fixed version: those probes report < warning


BUG_CLASSES = {
    "log_no_clamp": "probabilities fed to a log with no clamp (inf/NaN at 0 and 1)",
    "unbounded_grad": "a clamp floor far too small: gradients of 1e7..1e12 at saturation",
    "naive_log_activation": "log(sigmoid) / log(softmax) / log(sum(exp)) computed naively",
    "python_float": "a Python number returned when nothing is to be compared",
    "no_grad_path": "a result with no gradient path (.item(), argmax, no_grad, re-wrapped)",
    "not_reduced": "the default reduction returns a vector, not a scalar",
    "dtype_device": "tensors built on the CPU / in float32 whatever the input",
    "wrong_axis": "a weight vector broadcast along the wrong axis",
    "silent_broadcast": "(B, 1) silently broadcast against (B,) into a (B, B) matrix",
    "quadratic": "an O(n^2) pairwise matrix or a Python loop where O(n) vector code does",
    "fp16_overflow": "overflow to inf / NaN under fp16 (exp, large intermediate values)",
    "batch_dependent": "a mean that depends on how the data is batched or ordered",
    "wrong_backward": "a custom autograd.Function with a wrong backward",
    "inplace": "inputs modified in place",
    "nondeterminism": "randomness inside the loss (dropout, sampling, noise)",
    "wrong_minimum": "minimum away from the target / sign bug",
    "reduction_ignored": "the reduction argument ignored or unknown values accepted",
}


# --------------------------------------------------------------------------------------------
# helpers (correct code the bugs are built from)


def _onehot(target: Tensor, num_classes: int, like: Tensor) -> Tensor:
    """(B, H, W) ids -> (B, C, H, W) one-hot in ``like``'s dtype."""
    return F.one_hot(target.long(), num_classes).movedim(-1, 1).to(like.dtype)


def _stable_bce(logits: Tensor, target: Tensor) -> Tensor:
    return F.softplus(logits) - logits * target


def _same_shape(pred: Tensor, target: Tensor) -> None:
    """The shape check the wrong-axis entries do have (their only bug is the weight axis)."""
    if pred.shape != target.shape:
        raise ValueError(f"shape mismatch {tuple(pred.shape)} vs {tuple(target.shape)}")


# --------------------------------------------------------------------------------------------
# log_no_clamp: probabilities fed straight to a log


def bce_probs_noclamp(probs: Tensor, target: Tensor) -> Tensor:
    return -(target * torch.log(probs) + (1 - target) * torch.log(1 - probs)).mean()


def bce_probs_clamped(probs: Tensor, target: Tensor) -> Tensor:  # twin
    p = probs.clamp(1e-6, 1 - 1e-6)
    return -(target * torch.log(p) + (1 - target) * torch.log(1 - p)).mean()


def multilabel_probs_noclamp(probs: Tensor, target: Tensor) -> Tensor:
    per_class = -(target * probs.log() + (1 - target) * (1 - probs).log())
    return per_class.sum(1).mean()


def nll_probs_noclamp(probs: Tensor, target: Tensor) -> Tensor:
    return -torch.log(probs.gather(1, target.long()[:, None])).mean()


def focal_probs_noclamp(probs: Tensor, target: Tensor) -> Tensor:
    pt = torch.where(target > 0.5, probs, 1 - probs)
    return (-((1 - pt) ** 2) * torch.log(pt)).mean()


# --------------------------------------------------------------------------------------------
# unbounded_grad: a clamp floor too small (finite values, gradients ~1/eps at saturation)


def bce_probs_tiny_eps(probs: Tensor, target: Tensor) -> Tensor:
    eps = 1e-12  # below float32 resolution near 1: the gradient reaches 1e12
    p = probs.clamp(eps, 1 - eps)
    return -(target * torch.log(p) + (1 - target) * torch.log1p(-p)).mean()


def multilabel_probs_add_eps(probs: Tensor, target: Tensor) -> Tensor:
    eps = 1e-10
    return -(target * torch.log(probs + eps) + (1 - target) * torch.log(1 - probs + eps)).mean()


def bce_inverse_propensity(logits: Tensor, target: Tensor) -> Tensor:
    # divides by the predicted probability (not detached): 1 / sigmoid(-30) ~ 1e13
    p = torch.sigmoid(logits)
    return (_stable_bce(logits, target) / p).mean()


# --------------------------------------------------------------------------------------------
# naive_log_activation: NaN / inf at extremes


def bce_log_sigmoid(logits: Tensor, target: Tensor) -> Tensor:
    p = torch.sigmoid(logits)
    return -(target * torch.log(p) + (1 - target) * torch.log(1 - p)).mean()


def bce_with_logits_torch(logits: Tensor, target: Tensor) -> Tensor:  # twin
    return F.binary_cross_entropy_with_logits(logits, target)


def ce_log_softmax_naive(logits: Tensor, target: Tensor) -> Tensor:
    return -torch.log(torch.softmax(logits, 1)).gather(1, target.long()[:, None]).mean()


def ce_logsumexp_naive(logits: Tensor, target: Tensor) -> Tensor:
    lse = torch.log(torch.exp(logits).sum(1))
    return (lse - logits.gather(1, target.long()[:, None])[:, 0]).mean()


def multilabel_focal_naive(logits: Tensor, target: Tensor) -> Tensor:
    p = torch.sigmoid(logits)
    pos = target * (1 - p) ** 2 * torch.log(p)
    neg = (1 - target) * p**2 * torch.log(1 - p)
    return -(pos + neg).mean()


def seg_ce_naive(logits: Tensor, target: Tensor) -> Tensor:
    onehot = _onehot(target, logits.shape[1], logits)
    return -(onehot * torch.log(torch.softmax(logits, 1))).sum(1).mean()


def listnet_naive(scores: Tensor, target: Tensor) -> Tensor:
    true = torch.softmax(target.to(scores.dtype), -1)
    return -(true * torch.log(torch.softmax(scores, -1))).sum(-1).mean()


# --------------------------------------------------------------------------------------------
# python_float: a Python number when nothing is to be compared


def ranknet_float_when_no_pairs(scores: Tensor, target: Tensor) -> Tensor:
    rel = target.to(scores.dtype)
    pairs = rel[:, :, None] > rel[:, None, :]
    if not pairs.any():
        return 0.0  # type: ignore[return-value]
    diff = scores[:, :, None] - scores[:, None, :]
    return F.softplus(-diff)[pairs].mean()


def ranknet_zero_tensor_when_no_pairs(scores: Tensor, target: Tensor) -> Tensor:  # twin
    rel = target.to(scores.dtype)
    pairs = rel[:, :, None] > rel[:, None, :]
    if not pairs.any():
        return scores.sum() * 0.0  # keeps the graph
    diff = scores[:, :, None] - scores[:, None, :]
    return F.softplus(-diff)[pairs].mean()


def bce_positives_only(logits: Tensor, target: Tensor) -> Tensor:
    pos = target > 0.5
    if pos.sum() == 0:
        return 0.0  # type: ignore[return-value]
    return _stable_bce(logits[pos], target[pos]).mean()


def seg_foreground_dice_float(logits: Tensor, target: Tensor) -> Tensor:
    fg = target > 0
    if not fg.any():
        return 0.0  # type: ignore[return-value]
    p = 1 - torch.softmax(logits, 1)[:, 0]
    inter = (p * fg).sum()
    return 1 - 2 * inter / (p.sum() + fg.sum() + 1e-6)


def multilabel_per_positive_int(logits: Tensor, target: Tensor) -> Tensor:
    n_pos = int(target.sum())
    if n_pos == 0:
        return 0  # type: ignore[return-value]
    return _stable_bce(logits, target).sum() / n_pos


def ce_all_ignored_float(logits: Tensor, target: Tensor, ignore_index: int = -100) -> Tensor:
    valid = target != ignore_index
    if valid.sum() == 0:
        return 0.0  # type: ignore[return-value]
    return F.cross_entropy(logits[valid], target[valid])


# --------------------------------------------------------------------------------------------
# no_grad_path: a value that cannot be backpropagated


def mse_item(pred: Tensor, target: Tensor) -> Tensor:
    return ((pred - target) ** 2).mean().item()  # type: ignore[return-value]


def mse_tensor(pred: Tensor, target: Tensor) -> Tensor:  # twin
    return ((pred - target) ** 2).mean()


def mae_rewrapped(pred: Tensor, target: Tensor) -> Tensor:
    return torch.tensor(float((pred - target).abs().mean()))


def bce_under_no_grad(logits: Tensor, target: Tensor) -> Tensor:
    with torch.no_grad():  # copied from the validation loop
        return _stable_bce(logits, target).mean()


def ce_argmax_error_rate(logits: Tensor, target: Tensor) -> Tensor:
    return 1 - (logits.argmax(1) == target).to(logits.dtype).mean()


# --------------------------------------------------------------------------------------------
# not_reduced: a vector where a scalar is expected


def mse_elementwise(pred: Tensor, target: Tensor) -> Tensor:
    return (pred - target) ** 2


def seg_dice_per_image(logits: Tensor, target: Tensor) -> Tensor:
    p = torch.softmax(logits, 1)
    onehot = _onehot(target, logits.shape[1], logits)
    inter = (p * onehot).sum((1, 2, 3))
    return 1 - (2 * inter + 1) / (p.sum((1, 2, 3)) + onehot.sum((1, 2, 3)) + 1)


# --------------------------------------------------------------------------------------------
# dtype_device: tensors created on the CPU / in float32


def mse_casts_float32(pred: Tensor, target: Tensor) -> Tensor:
    return ((pred.float() - target.float()) ** 2).mean()


def mse_follows_dtype(pred: Tensor, target: Tensor) -> Tensor:  # twin
    return ((pred - target) ** 2).mean()


def ce_class_weights_cpu(logits: Tensor, target: Tensor) -> Tensor:
    w = torch.ones(logits.shape[1])  # CPU, float32
    w[0] = 0.5
    nll = -torch.log_softmax(logits, 1).gather(1, target.long()[:, None])[:, 0]
    return (w[target] * nll).sum() / w[target].sum()


def forecast_time_weights_cpu(pred: Tensor, target: Tensor) -> Tensor:
    w = torch.linspace(1.0, 0.1, pred.shape[-1])  # CPU, float32
    return (w * (pred - target).abs()).mean()


def bce_cpu_float32_buffer(logits: Tensor, target: Tensor) -> Tensor:
    out = torch.zeros(logits.shape)  # CPU float32 buffer written into
    out[:] = _stable_bce(logits, target)
    return out.mean()


def seg_class_weights_cpu(logits: Tensor, target: Tensor) -> Tensor:
    w = torch.ones(logits.shape[1], 1, 1)
    logp = torch.log_softmax(logits, 1) * w
    return F.nll_loss(logp, target.long())


def ranking_scores_float32(scores: Tensor, target: Tensor) -> Tensor:
    s = scores.float()
    rel = target.float()
    return -(torch.softmax(rel, -1) * torch.log_softmax(s, -1)).sum(-1).mean()


# --------------------------------------------------------------------------------------------
# wrong_axis: a weight vector along the wrong axis


def mse_feature_weight_wrong_axis(
    pred: Tensor, target: Tensor, weight: Optional[Tensor] = None
) -> Tensor:
    _same_shape(pred, target)
    err = (pred - target) ** 2
    if weight is not None:
        err = err * weight[:, None]  # meant the last (feature) axis: lines up with T instead
    return err.mean()


def mse_feature_weight_right_axis(
    pred: Tensor, target: Tensor, weight: Optional[Tensor] = None
) -> Tensor:  # twin
    if pred.shape != target.shape:
        raise ValueError(f"shape mismatch {tuple(pred.shape)} vs {tuple(target.shape)}")
    err = (pred - target) ** 2
    if weight is not None:
        err = err * weight  # (F,) broadcasts along the last axis
    return err.mean()


def multilabel_class_weight_wrong_axis(
    logits: Tensor, target: Tensor, class_weight: Optional[Tensor] = None
) -> Tensor:
    _same_shape(logits, target)
    loss = _stable_bce(logits, target)
    if class_weight is not None:
        loss = loss * class_weight[:, None]  # weights rows (samples), not columns (classes)
    return loss.mean()


def forecast_sample_weight_wrong_axis(
    pred: Tensor, target: Tensor, sample_weight: Optional[Tensor] = None
) -> Tensor:
    _same_shape(pred, target)
    err = (pred - target).abs()
    if sample_weight is not None:
        err = err * sample_weight  # (B,) against (B, T): lines up with T
    return err.mean()


def regression_sample_weight_wrong_axis(
    pred: Tensor, target: Tensor, sample_weight: Optional[Tensor] = None
) -> Tensor:
    _same_shape(pred, target)
    err = (pred - target) ** 2
    if sample_weight is not None:
        err = err * sample_weight.reshape(1, -1)  # (1, B): a (B, D) error lines up with D
    return err.mean()


# --------------------------------------------------------------------------------------------
# silent_broadcast: no shape check, (B, 1) against (B,)


def mse_no_shape_check(pred: Tensor, target: Tensor) -> Tensor:
    return ((pred - target) ** 2).mean()


def mse_with_shape_check(pred: Tensor, target: Tensor) -> Tensor:  # twin
    if pred.shape != target.shape:
        raise ValueError(f"shape mismatch {tuple(pred.shape)} vs {tuple(target.shape)}")
    return ((pred - target) ** 2).mean()


def bce_manual_broadcast(logits: Tensor, target: Tensor) -> Tensor:
    return _stable_bce(logits, target).mean()


def forecast_mae_broadcast(pred: Tensor, target: Tensor) -> Tensor:
    return (pred - target).abs().mean()


def smooth_l1_torch_broadcast(pred: Tensor, target: Tensor) -> Tensor:
    import warnings

    with warnings.catch_warnings():  # torch warns, then broadcasts anyway
        warnings.simplefilter("ignore")
        return F.smooth_l1_loss(pred, target)


# --------------------------------------------------------------------------------------------
# quadratic: O(n^2) work or a Python loop for a pointwise loss


def mae_pairwise_cdist(pred: Tensor, target: Tensor) -> Tensor:
    return torch.cdist(pred.reshape(-1, 1), target.reshape(-1, 1)).diagonal().mean()


def mae_vectorized(pred: Tensor, target: Tensor) -> Tensor:  # twin
    return (pred - target).abs().mean()


def mse_pairwise_eye_mask(pred: Tensor, target: Tensor) -> Tensor:
    p, t = pred.reshape(-1), target.reshape(-1)
    d = p[None, :] - t[:, None]
    eye = torch.eye(p.numel(), dtype=p.dtype, device=p.device)
    return (d**2 * eye).sum() / p.numel()


def bce_pairwise_select(logits: Tensor, target: Tensor) -> Tensor:
    x, t = logits.reshape(-1), target.reshape(-1)
    full = F.softplus(x)[None, :] - x[None, :] * t[:, None]  # every logit against every target
    return full.diagonal().mean()


def forecast_python_loop(pred: Tensor, target: Tensor) -> Tensor:
    total = pred.new_zeros(())
    for p, t in zip(pred.reshape(-1), target.reshape(-1)):
        total = total + (p - t).abs()
    return total / pred.numel()


def ce_python_loop(logits: Tensor, target: Tensor) -> Tensor:
    total = logits.new_zeros(())
    for i in range(logits.shape[0]):
        total = total - torch.log_softmax(logits[i], 0)[target[i]]
    return total / logits.shape[0]


# --------------------------------------------------------------------------------------------
# fp16_overflow


def ce_temperature_softmax_naive(logits: Tensor, target: Tensor) -> Tensor:
    # temperature 0.05 as in contrastive losses: exp(x / 0.05) is inf in fp16 from x = 0.56
    e = torch.exp(logits / 0.05)
    p = e / e.sum(1, keepdim=True)
    return -torch.log(p.gather(1, target.long()[:, None])).mean()


def ce_temperature_log_softmax(logits: Tensor, target: Tensor) -> Tensor:  # twin
    return F.cross_entropy(logits / 0.05, target.long())


def listnet_temperature_naive(scores: Tensor, target: Tensor) -> Tensor:
    e = torch.exp(scores / 0.1)
    p = e / e.sum(-1, keepdim=True)
    true = torch.softmax(target.to(scores.dtype), -1)
    return -(true * torch.log(p)).sum(-1).mean()


def seg_temperature_softmax_naive(logits: Tensor, target: Tensor) -> Tensor:
    e = torch.exp(logits / 0.05)
    p = e / e.sum(1, keepdim=True)
    onehot = _onehot(target, logits.shape[1], logits)
    return 1 - (2 * (p * onehot).sum() + 1) / (p.sum() + onehot.sum() + 1)


def mse_in_millimetres(pred: Tensor, target: Tensor) -> Tensor:
    d = (pred - target) * 1000.0  # metres -> millimetres: squares reach 1e6, fp16 max is 65504
    return (d**2).mean() / 1e6


def bce_exp_sigmoid_naive(logits: Tensor, target: Tensor) -> Tensor:
    z = logits / 0.05  # sharpened: exp(z) overflows fp16 first
    e = torch.exp(z)
    p = e / (1 + e)
    return -(target * torch.log(p) + (1 - target) * torch.log(1 - p)).mean()


# --------------------------------------------------------------------------------------------
# batch_dependent: the mean depends on the batch split or the order


def mse_fixed_divisor(pred: Tensor, target: Tensor) -> Tensor:
    return ((pred - target) ** 2).sum() / 32  # "the batch size"


def mse_mean(pred: Tensor, target: Tensor) -> Tensor:  # twin
    return ((pred - target) ** 2).mean()


def bce_normalized_by_positives(logits: Tensor, target: Tensor) -> Tensor:
    return _stable_bce(logits, target).sum() / target.sum().clamp(min=1.0)


def mse_batch_standardized(pred: Tensor, target: Tensor) -> Tensor:
    mu, sd = target.mean(), target.std() + 1e-6
    return (((pred - mu) / sd - (target - mu) / sd) ** 2).mean()


def ce_position_weights(logits: Tensor, target: Tensor) -> Tensor:
    nll = F.cross_entropy(logits, target.long(), reduction="none")
    w = torch.linspace(
        1.0, 2.0, nll.shape[0], dtype=nll.dtype, device=nll.device
    )  # later rows count more
    return (w * nll).mean()


def forecast_max_normalized(pred: Tensor, target: Tensor) -> Tensor:
    return (pred - target).abs().mean() / (target.abs().max() + 1e-6)


# --------------------------------------------------------------------------------------------
# wrong_backward: custom autograd.Function


class _MSEMissingTwo(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, pred: Tensor, target: Tensor) -> Tensor:
        ctx.save_for_backward(pred, target)
        return ((pred - target) ** 2).mean()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Any:
        pred, target = ctx.saved_tensors
        return grad * (pred - target) / pred.numel(), None  # forgot the factor 2


class _MSECorrect(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, pred: Tensor, target: Tensor) -> Tensor:
        ctx.save_for_backward(pred, target)
        return ((pred - target) ** 2).mean()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Any:
        pred, target = ctx.saved_tensors
        return grad * 2 * (pred - target) / pred.numel(), None


def mse_custom_backward_missing_two(pred: Tensor, target: Tensor) -> Tensor:
    return _MSEMissingTwo.apply(pred, target)


def mse_custom_backward_correct(pred: Tensor, target: Tensor) -> Tensor:  # twin
    return _MSECorrect.apply(pred, target)


class _BCESignFlip(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, logits: Tensor, target: Tensor) -> Tensor:
        ctx.save_for_backward(logits, target)
        return _stable_bce(logits, target).mean()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Any:
        logits, target = ctx.saved_tensors
        return grad * (target - torch.sigmoid(logits)) / logits.numel(), None  # sign flipped


def bce_custom_backward_sign(logits: Tensor, target: Tensor) -> Tensor:
    return _BCESignFlip.apply(logits, target)


class _SmoothL1SignOnly(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, pred: Tensor, target: Tensor) -> Tensor:
        d = pred - target
        ctx.save_for_backward(d)
        a = d.abs()
        return torch.where(a < 1, 0.5 * d**2, a - 0.5).mean()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Any:
        (d,) = ctx.saved_tensors
        return grad * torch.sign(d) / d.numel(), None  # wrong inside |d| < 1 (should be d)


def smooth_l1_custom_backward(pred: Tensor, target: Tensor) -> Tensor:
    return _SmoothL1SignOnly.apply(pred, target)


class _CESumBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, logits: Tensor, target: Tensor) -> Tensor:
        ctx.save_for_backward(logits, target)
        return F.cross_entropy(logits, target)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Any:
        logits, target = ctx.saved_tensors
        g = torch.softmax(logits, 1) - F.one_hot(target, logits.shape[1]).to(logits.dtype)
        return grad * g, None  # forgot to divide by the batch size (forward is a mean)


def ce_custom_backward_no_mean(logits: Tensor, target: Tensor) -> Tensor:
    return _CESumBackward.apply(logits, target.long())


# --------------------------------------------------------------------------------------------
# inplace: the caller's tensors modified


def bce_label_smoothing_inplace(logits: Tensor, target: Tensor) -> Tensor:
    target.mul_(0.9).add_(0.05)  # label smoothing, in place
    return _stable_bce(logits, target).mean()


def bce_label_smoothing(logits: Tensor, target: Tensor) -> Tensor:  # twin
    return _stable_bce(logits, target * 0.9 + 0.05).mean()


def mse_center_target_inplace(pred: Tensor, target: Tensor) -> Tensor:
    target -= target.mean()
    return ((pred - pred.mean() - target) ** 2).mean()


def ce_stabilize_logits_inplace(logits: Tensor, target: Tensor) -> Tensor:
    logits.data.sub_(logits.data.max(1, keepdim=True).values)  # "stabilize" through .data
    return F.cross_entropy(logits, target.long())


def multilabel_smoothing_inplace(logits: Tensor, target: Tensor) -> Tensor:
    target.mul_(0.8).add_(0.1)
    return _stable_bce(logits, target).mean()


def forecast_clip_pred_inplace(pred: Tensor, target: Tensor) -> Tensor:
    pred.data.clamp_(min=0.0)  # forecasts of counts cannot be negative
    return (pred - target).abs().mean()


# --------------------------------------------------------------------------------------------
# nondeterminism: randomness inside


def bce_with_dropout(logits: Tensor, target: Tensor) -> Tensor:
    return F.dropout(_stable_bce(logits, target), p=0.1).mean()  # training=True by default


def bce_without_dropout(logits: Tensor, target: Tensor) -> Tensor:  # twin
    return _stable_bce(logits, target).mean()


def mse_label_noise(pred: Tensor, target: Tensor) -> Tensor:
    noisy = target + 0.01 * torch.randn_like(target)
    return ((pred - noisy) ** 2).mean()


def ranking_sampled_negatives(scores: Tensor, target: Tensor) -> Tensor:
    n = scores.shape[-1]
    idx = torch.randperm(n, device=scores.device)[: max(1, n // 2)]
    s, rel = scores[..., idx], target.to(scores.dtype)[..., idx]
    return -(torch.softmax(rel, -1) * torch.log_softmax(s, -1)).sum(-1).mean()


def ce_stochastic_smoothing(logits: Tensor, target: Tensor) -> Tensor:
    eps = float(torch.rand(())) * 0.2
    return F.cross_entropy(logits, target.long(), label_smoothing=eps)


# --------------------------------------------------------------------------------------------
# wrong_minimum: minimum away from the target, sign bugs


def mse_plus_sign(pred: Tensor, target: Tensor) -> Tensor:
    return ((pred + target) ** 2).mean()


def mse_minus_sign(pred: Tensor, target: Tensor) -> Tensor:  # twin
    return ((pred - target) ** 2).mean()


def mse_gradient_ascent(pred: Tensor, target: Tensor) -> Tensor:
    return -((pred - target) ** 2).mean()


def bce_flipped_target(logits: Tensor, target: Tensor) -> Tensor:
    return F.binary_cross_entropy_with_logits(logits, 1 - target)


def ce_negated_logits(logits: Tensor, target: Tensor) -> Tensor:
    return F.cross_entropy(-logits, target.long())


def listnet_reversed_relevance(scores: Tensor, target: Tensor) -> Tensor:
    true = torch.softmax(-target.to(scores.dtype), -1)
    return -(true * torch.log_softmax(scores, -1)).sum(-1).mean()


def forecast_shrunk_target(pred: Tensor, target: Tensor) -> Tensor:
    return ((pred - 0.5 * target) ** 2).mean()


def seg_dice_not_one_minus(logits: Tensor, target: Tensor) -> Tensor:
    p = torch.softmax(logits, 1)
    onehot = _onehot(target, logits.shape[1], logits)
    return (2 * (p * onehot).sum() + 1) / (p.sum() + onehot.sum() + 1)  # the score, not 1 - score


# --------------------------------------------------------------------------------------------
# reduction_ignored


def mse_reduction_ignored(pred: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    return ((pred - target) ** 2).mean()


def mse_reduction_honoured(pred: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    loss = (pred - target) ** 2  # twin
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none'; got {reduction!r}")


def bce_reduction_none_is_mean(logits: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    loss = _stable_bce(logits, target)
    if reduction == "sum":
        return loss.sum()
    return loss.mean()  # "none" and any typo land here


def forecast_reduction_none_per_series(
    pred: Tensor, target: Tensor, reduction: str = "mean"
) -> Tensor:
    loss = (pred - target).abs()
    if reduction == "none":
        return loss.mean(-1)  # per series: sums to sum / T, not sum
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.mean()
    raise ValueError(f"unknown reduction {reduction!r}")


def ce_reduction_sum_is_mean(logits: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    loss = F.cross_entropy(logits, target.long(), reduction="none")
    if reduction == "none":
        return loss
    if reduction in ("mean", "sum"):
        return loss.mean()  # "sum" forgotten
    raise ValueError(f"unknown reduction {reduction!r}")


# --------------------------------------------------------------------------------------------
# harder variants (added after a first run: they exercise the probes' less obvious paths)


def mse_float_on_single_element(pred: Tensor, target: Tensor) -> Tensor:
    if pred.numel() < 2:  # "nothing to average"
        return 0.0  # type: ignore[return-value]
    return ((pred - target) ** 2).mean()


def mse_keepdim_vector(pred: Tensor, target: Tensor) -> Tensor:
    return ((pred - target) ** 2).mean(0, keepdim=True)  # shape (1,), not ()


def ce_numpy_class_weights(logits: Tensor, target: Tensor) -> Tensor:
    import numpy as np

    w = torch.from_numpy(np.linspace(0.5, 1.5, logits.shape[1]))  # float64 on the CPU
    nll = -torch.log_softmax(logits, 1).gather(1, target.long()[:, None])[:, 0]
    return (w[target] * nll).mean()


def bce_unsqueeze_target_inplace(logits: Tensor, target: Tensor) -> Tensor:
    target.unsqueeze_(1)  # "make it (B, 1) like the logits": changes the caller's tensor
    return F.binary_cross_entropy_with_logits(logits.unsqueeze(1), target)


def mse_normalizes_sample_weight_inplace(
    pred: Tensor, target: Tensor, sample_weight: Optional[Tensor] = None
) -> Tensor:
    err = (pred - target) ** 2
    if sample_weight is None:
        return err.mean()
    sample_weight /= sample_weight.sum()  # the caller's weights, normalized in place
    return (err * sample_weight).sum()


def bce_dropout_reseeded(logits: Tensor, target: Tensor) -> Tensor:
    torch.manual_seed(0)  # "make the dropout reproducible": resets the caller's RNG every step
    return F.dropout(_stable_bce(logits, target), p=0.1).mean()


def seg_dice_outer_product(logits: Tensor, target: Tensor) -> Tensor:
    p = torch.softmax(logits, 1).flatten(2)  # (B, C, HW)
    onehot = _onehot(target, logits.shape[1], logits).flatten(2)
    # every pixel against every pixel (B, C, HW, HW), for the diagonal only
    inter = (p.unsqueeze(-1) * onehot.unsqueeze(-2)).diagonal(dim1=-2, dim2=-1).sum(-1)
    return 1 - ((2 * inter + 1) / (p.sum(-1) + onehot.sum(-1) + 1)).mean()


def bce_normalized_by_unique_count(logits: Tensor, target: Tensor) -> Tensor:
    return _stable_bce(logits, target).sum() / (16 * target.unique().numel())


def hinge_sign_bug(logits: Tensor, target: Tensor) -> Tensor:
    y = 2 * target - 1
    return torch.relu(1 + y * logits).mean()  # should be 1 - y * logits


# --------------------------------------------------------------------------------------------

_E = ZooEntry
ENTRIES: list[ZooEntry] = [
    # log_no_clamp
    _E(
        "bce_probs_noclamp",
        bce_probs_noclamp,
        "binary",
        "probs",
        "log_no_clamp",
        ("extremes", "bounded_grad"),
        bce_probs_clamped,
    ),
    _E(
        "multilabel_probs_noclamp",
        multilabel_probs_noclamp,
        "multilabel",
        "probs",
        "log_no_clamp",
        ("extremes", "bounded_grad"),
    ),
    _E(
        "nll_probs_noclamp",
        nll_probs_noclamp,
        "multiclass",
        "probs",
        "log_no_clamp",
        ("extremes", "bounded_grad"),
    ),
    _E(
        "focal_probs_noclamp",
        focal_probs_noclamp,
        "binary",
        "probs",
        "log_no_clamp",
        ("extremes", "bounded_grad"),
    ),
    # unbounded_grad
    _E(
        "bce_probs_tiny_eps",
        bce_probs_tiny_eps,
        "binary",
        "probs",
        "unbounded_grad",
        ("bounded_grad",),
    ),
    _E(
        "multilabel_probs_add_eps",
        multilabel_probs_add_eps,
        "multilabel",
        "probs",
        "unbounded_grad",
        ("bounded_grad",),
    ),
    _E(
        "bce_inverse_propensity",
        bce_inverse_propensity,
        "binary",
        "logits",
        "unbounded_grad",
        ("bounded_grad", "extremes"),
    ),
    # naive_log_activation
    _E(
        "bce_log_sigmoid",
        bce_log_sigmoid,
        "binary",
        "logits",
        "naive_log_activation",
        ("extremes",),
        bce_with_logits_torch,
    ),
    _E(
        "ce_log_softmax_naive",
        ce_log_softmax_naive,
        "multiclass",
        "logits",
        "naive_log_activation",
        ("extremes",),
    ),
    _E(
        "ce_logsumexp_naive",
        ce_logsumexp_naive,
        "multiclass",
        "logits",
        "naive_log_activation",
        ("extremes",),
    ),
    _E(
        "multilabel_focal_naive",
        multilabel_focal_naive,
        "multilabel",
        "logits",
        "naive_log_activation",
        ("extremes",),
    ),
    _E(
        "seg_ce_naive",
        seg_ce_naive,
        "segmentation",
        "logits",
        "naive_log_activation",
        ("extremes",),
    ),
    _E(
        "listnet_naive",
        listnet_naive,
        "ranking",
        "scores",
        "naive_log_activation",
        ("extremes",),
    ),
    # python_float
    _E(
        "ranknet_float_when_no_pairs",
        ranknet_float_when_no_pairs,
        "ranking",
        "scores",
        "python_float",
        ("returns_tensor",),
        ranknet_zero_tensor_when_no_pairs,
    ),
    _E(
        "bce_positives_only",
        bce_positives_only,
        "binary",
        "logits",
        "python_float",
        ("returns_tensor",),
    ),
    _E(
        "seg_foreground_dice_float",
        seg_foreground_dice_float,
        "segmentation",
        "logits",
        "python_float",
        ("returns_tensor",),
    ),
    _E(
        "multilabel_per_positive_int",
        multilabel_per_positive_int,
        "multilabel",
        "logits",
        "python_float",
        ("returns_tensor",),
    ),
    _E(
        "ce_all_ignored_float",
        ce_all_ignored_float,
        "multiclass",
        "logits",
        "python_float",
        ("returns_tensor",),
    ),
    # no_grad_path
    _E(
        "mse_item",
        mse_item,
        "regression",
        "values",
        "no_grad_path",
        ("returns_tensor",),
        mse_tensor,
    ),
    _E(
        "mae_rewrapped",
        mae_rewrapped,
        "forecasting",
        "values",
        "no_grad_path",
        ("returns_tensor",),
    ),
    _E(
        "bce_under_no_grad",
        bce_under_no_grad,
        "binary",
        "logits",
        "no_grad_path",
        ("returns_tensor",),
    ),
    _E(
        "ce_argmax_error_rate",
        ce_argmax_error_rate,
        "multiclass",
        "logits",
        "no_grad_path",
        ("returns_tensor",),
    ),
    # not_reduced
    _E(
        "mse_elementwise",
        mse_elementwise,
        "regression",
        "values",
        "not_reduced",
        ("returns_tensor",),
    ),
    _E(
        "seg_dice_per_image",
        seg_dice_per_image,
        "segmentation",
        "logits",
        "not_reduced",
        ("returns_tensor",),
    ),
    # dtype_device
    _E(
        "mse_casts_float32",
        mse_casts_float32,
        "regression",
        "values",
        "dtype_device",
        ("dtype_device", "gradcheck"),
        mse_follows_dtype,
    ),
    _E(
        "ce_class_weights_cpu",
        ce_class_weights_cpu,
        "multiclass",
        "logits",
        "dtype_device",
        ("dtype_device",),
    ),
    _E(
        "forecast_time_weights_cpu",
        forecast_time_weights_cpu,
        "forecasting",
        "values",
        "dtype_device",
        ("dtype_device",),
    ),
    _E(
        "bce_cpu_float32_buffer",
        bce_cpu_float32_buffer,
        "binary",
        "logits",
        "dtype_device",
        ("dtype_device", "gradcheck"),
    ),
    _E(
        "seg_class_weights_cpu",
        seg_class_weights_cpu,
        "segmentation",
        "logits",
        "dtype_device",
        ("dtype_device",),
    ),
    _E(
        "ranking_scores_float32",
        ranking_scores_float32,
        "ranking",
        "scores",
        "dtype_device",
        ("dtype_device", "gradcheck"),
    ),
    # wrong_axis
    _E(
        "mse_feature_weight_wrong_axis",
        mse_feature_weight_wrong_axis,
        "regression",
        "values",
        "wrong_axis",
        ("shape_traps",),
        mse_feature_weight_right_axis,
    ),
    _E(
        "multilabel_class_weight_wrong_axis",
        multilabel_class_weight_wrong_axis,
        "multilabel",
        "logits",
        "wrong_axis",
        ("shape_traps",),
    ),
    _E(
        "forecast_sample_weight_wrong_axis",
        forecast_sample_weight_wrong_axis,
        "forecasting",
        "values",
        "wrong_axis",
        ("shape_traps",),
    ),
    _E(
        "regression_sample_weight_wrong_axis",
        regression_sample_weight_wrong_axis,
        "regression",
        "values",
        "wrong_axis",
        ("shape_traps",),
    ),
    # silent_broadcast
    _E(
        "mse_no_shape_check",
        mse_no_shape_check,
        "regression",
        "values",
        "silent_broadcast",
        ("shape_traps",),
        mse_with_shape_check,
    ),
    _E(
        "bce_manual_broadcast",
        bce_manual_broadcast,
        "binary",
        "logits",
        "silent_broadcast",
        ("shape_traps",),
    ),
    _E(
        "forecast_mae_broadcast",
        forecast_mae_broadcast,
        "forecasting",
        "values",
        "silent_broadcast",
        ("shape_traps",),
    ),
    _E(
        "smooth_l1_torch_broadcast",
        smooth_l1_torch_broadcast,
        "regression",
        "values",
        "silent_broadcast",
        ("shape_traps",),
    ),
    # quadratic
    _E(
        "mae_pairwise_cdist",
        mae_pairwise_cdist,
        "regression",
        "values",
        "quadratic",
        ("performance",),
        mae_vectorized,
    ),
    _E(
        "mse_pairwise_eye_mask",
        mse_pairwise_eye_mask,
        "regression",
        "values",
        "quadratic",
        ("performance",),
    ),
    _E(
        "bce_pairwise_select",
        bce_pairwise_select,
        "binary",
        "logits",
        "quadratic",
        ("performance",),
    ),
    _E(
        "forecast_python_loop",
        forecast_python_loop,
        "forecasting",
        "values",
        "quadratic",
        ("performance",),
    ),
    _E(
        "ce_python_loop",
        ce_python_loop,
        "multiclass",
        "logits",
        "quadratic",
        ("performance",),
    ),
    # fp16_overflow
    _E(
        "ce_temperature_softmax_naive",
        ce_temperature_softmax_naive,
        "multiclass",
        "logits",
        "fp16_overflow",
        ("low_precision",),
        ce_temperature_log_softmax,
    ),
    _E(
        "listnet_temperature_naive",
        listnet_temperature_naive,
        "ranking",
        "scores",
        "fp16_overflow",
        ("low_precision",),
    ),
    _E(
        "seg_temperature_softmax_naive",
        seg_temperature_softmax_naive,
        "segmentation",
        "logits",
        "fp16_overflow",
        ("low_precision",),
    ),
    _E(
        "mse_in_millimetres",
        mse_in_millimetres,
        "regression",
        "values",
        "fp16_overflow",
        ("low_precision",),
    ),
    _E(
        "bce_exp_sigmoid_naive",
        bce_exp_sigmoid_naive,
        "binary",
        "logits",
        "fp16_overflow",
        ("low_precision", "extremes"),
    ),
    # batch_dependent
    _E(
        "mse_fixed_divisor",
        mse_fixed_divisor,
        "regression",
        "values",
        "batch_dependent",
        ("batch_invariance",),
        mse_mean,
    ),
    _E(
        "bce_normalized_by_positives",
        bce_normalized_by_positives,
        "binary",
        "logits",
        "batch_dependent",
        ("batch_invariance",),
    ),
    _E(
        "mse_batch_standardized",
        mse_batch_standardized,
        "regression",
        "values",
        "batch_dependent",
        ("batch_invariance",),
    ),
    _E(
        "ce_position_weights",
        ce_position_weights,
        "multiclass",
        "logits",
        "batch_dependent",
        ("batch_invariance",),
    ),
    _E(
        "forecast_max_normalized",
        forecast_max_normalized,
        "forecasting",
        "values",
        "batch_dependent",
        ("batch_invariance",),
    ),
    # wrong_backward
    _E(
        "mse_custom_backward_missing_two",
        mse_custom_backward_missing_two,
        "regression",
        "values",
        "wrong_backward",
        ("gradcheck",),
        mse_custom_backward_correct,
    ),
    _E(
        "bce_custom_backward_sign",
        bce_custom_backward_sign,
        "binary",
        "logits",
        "wrong_backward",
        ("gradcheck", "minimum"),
    ),
    _E(
        "smooth_l1_custom_backward",
        smooth_l1_custom_backward,
        "regression",
        "values",
        "wrong_backward",
        ("gradcheck",),
    ),
    _E(
        "ce_custom_backward_no_mean",
        ce_custom_backward_no_mean,
        "multiclass",
        "logits",
        "wrong_backward",
        ("gradcheck",),
    ),
    # inplace
    _E(
        "bce_label_smoothing_inplace",
        bce_label_smoothing_inplace,
        "binary",
        "logits",
        "inplace",
        ("inplace",),
        bce_label_smoothing,
    ),
    _E(
        "mse_center_target_inplace",
        mse_center_target_inplace,
        "regression",
        "values",
        "inplace",
        ("inplace",),
    ),
    _E(
        "ce_stabilize_logits_inplace",
        ce_stabilize_logits_inplace,
        "multiclass",
        "logits",
        "inplace",
        ("inplace",),
    ),
    _E(
        "multilabel_smoothing_inplace",
        multilabel_smoothing_inplace,
        "multilabel",
        "logits",
        "inplace",
        ("inplace",),
    ),
    _E(
        "forecast_clip_pred_inplace",
        forecast_clip_pred_inplace,
        "forecasting",
        "values",
        "inplace",
        ("inplace",),
    ),
    # nondeterminism
    _E(
        "bce_with_dropout",
        bce_with_dropout,
        "binary",
        "logits",
        "nondeterminism",
        ("determinism",),
        bce_without_dropout,
    ),
    _E(
        "mse_label_noise",
        mse_label_noise,
        "regression",
        "values",
        "nondeterminism",
        ("determinism",),
    ),
    _E(
        "ranking_sampled_negatives",
        ranking_sampled_negatives,
        "ranking",
        "scores",
        "nondeterminism",
        ("determinism",),
    ),
    _E(
        "ce_stochastic_smoothing",
        ce_stochastic_smoothing,
        "multiclass",
        "logits",
        "nondeterminism",
        ("determinism",),
    ),
    # wrong_minimum
    _E(
        "mse_plus_sign",
        mse_plus_sign,
        "regression",
        "values",
        "wrong_minimum",
        ("minimum",),
        mse_minus_sign,
    ),
    _E(
        "mse_gradient_ascent",
        mse_gradient_ascent,
        "regression",
        "values",
        "wrong_minimum",
        ("minimum",),
    ),
    _E(
        "bce_flipped_target",
        bce_flipped_target,
        "binary",
        "logits",
        "wrong_minimum",
        ("minimum",),
    ),
    _E(
        "ce_negated_logits",
        ce_negated_logits,
        "multiclass",
        "logits",
        "wrong_minimum",
        ("minimum",),
    ),
    _E(
        "listnet_reversed_relevance",
        listnet_reversed_relevance,
        "ranking",
        "scores",
        "wrong_minimum",
        ("minimum",),
    ),
    _E(
        "forecast_shrunk_target",
        forecast_shrunk_target,
        "forecasting",
        "values",
        "wrong_minimum",
        ("minimum",),
    ),
    _E(
        "seg_dice_not_one_minus",
        seg_dice_not_one_minus,
        "segmentation",
        "logits",
        "wrong_minimum",
        ("minimum",),
    ),
    # reduction_ignored
    _E(
        "mse_reduction_ignored",
        mse_reduction_ignored,
        "regression",
        "values",
        "reduction_ignored",
        ("reductions",),
        mse_reduction_honoured,
    ),
    _E(
        "bce_reduction_none_is_mean",
        bce_reduction_none_is_mean,
        "binary",
        "logits",
        "reduction_ignored",
        ("reductions",),
    ),
    _E(
        "forecast_reduction_none_per_series",
        forecast_reduction_none_per_series,
        "forecasting",
        "values",
        "reduction_ignored",
        ("reductions",),
    ),
    _E(
        "ce_reduction_sum_is_mean",
        ce_reduction_sum_is_mean,
        "multiclass",
        "logits",
        "reduction_ignored",
        ("reductions",),
    ),
    # harder variants
    _E(
        "mse_float_on_single_element",
        mse_float_on_single_element,
        "regression",
        "values",
        "python_float",
        ("returns_tensor",),
    ),
    _E(
        "mse_keepdim_vector",
        mse_keepdim_vector,
        "regression",
        "values",
        "not_reduced",
        ("returns_tensor",),
    ),
    _E(
        "ce_numpy_class_weights",
        ce_numpy_class_weights,
        "multiclass",
        "logits",
        "dtype_device",
        ("dtype_device",),
    ),
    _E(
        "bce_unsqueeze_target_inplace",
        bce_unsqueeze_target_inplace,
        "binary",
        "logits",
        "inplace",
        ("inplace",),
    ),
    _E(
        "mse_normalizes_sample_weight_inplace",
        mse_normalizes_sample_weight_inplace,
        "regression",
        "values",
        "inplace",
        ("inplace",),
    ),
    _E(
        "bce_dropout_reseeded",
        bce_dropout_reseeded,
        "binary",
        "logits",
        "nondeterminism",
        ("determinism",),
    ),
    _E(
        "seg_dice_outer_product",
        seg_dice_outer_product,
        "segmentation",
        "logits",
        "quadratic",
        ("performance",),
    ),
    _E(
        "bce_normalized_by_unique_count",
        bce_normalized_by_unique_count,
        "binary",
        "logits",
        "batch_dependent",
        ("batch_invariance",),
    ),
    _E(
        "hinge_sign_bug",
        hinge_sign_bug,
        "binary",
        "logits",
        "wrong_minimum",
        ("minimum",),
    ),
]


def by_name(name: str) -> ZooEntry:
    for entry in ENTRIES:
        if entry.name == name:
            return entry
    raise KeyError(name)
