r"""Binary and multiclass metric sets on torchmetrics, plus the exact best-F1 threshold search.

:func:`binary_metrics` and :func:`multiclass_metrics` return a torchmetrics
``MetricCollection``: every metric streams (``update`` per batch, ``compute`` at the end),
resets, checkpoints (all states are persistent) and synchronises across processes the
standard torchmetrics way. What torchmetrics has is used as is; this module adds

* the input convention: ``input="logits" | "probs"`` is explicit (never guessed from the
  values); the collection applies the sigmoid / softmax itself, checks every batch once and
  hands probabilities to the torchmetrics classes;
* :class:`BestF1`: the maximum F1 over all thresholds and the threshold attaining it, exact
  (one sort, O(n log n));
* fixes where a torchmetrics 1.9 class is wrong or fragile (each a private subclass that only
  overrides ``compute`` or the distributed sync, documented on the set functions): calibration
  error with a confidence of exactly 1.0 (torchmetrics issue #3510), MCC in float32 and its
  degenerate cases, an exception from ``compute()`` before ``update()``, and a process that
  received no batch in a distributed run (the sync of list states and of lazily shaped sums
  fails in torchmetrics; the fix is :class:`~losslab.metrics._base.LosslabMetric`'s, mixed
  in front of the torchmetrics class).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, Optional

import torch
from torch import Tensor
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    BinaryAccuracy,
    BinaryAUROC,
    BinaryAveragePrecision,
    BinaryCalibrationError,
    BinaryF1Score,
    BinaryMatthewsCorrCoef,
    BinaryPrecision,
    BinaryRecall,
    BinaryStatScores,
    MulticlassAccuracy,
    MulticlassCalibrationError,
    MulticlassF1Score,
)
from torchmetrics.utilities.data import dim_zero_cat

from losslab._checks import (
    check_choice,
    check_class_ids,
    check_float,
    check_floating,
    check_ignore_index,
    check_int,
    check_int_option,
    check_same_device,
    check_tensor,
    fail,
    fmt,
    is_compiling,
)
from losslab.metrics._base import (
    CheckedCollection,
    LosslabMetric,
    check_prefix,
    nan_like,
    no_samples,
)
from losslab.metrics._inputs import check_pair

__all__ = ["BestF1", "binary_metrics", "multiclass_metrics"]

INPUTS = ("logits", "probs")

# ----------------------------------------------------------------------------------------------
# Input checks shared by the collections and BestF1
# ----------------------------------------------------------------------------------------------


def _check_values(fn: str, name: str, x: Tensor, *, probs: bool, finite: bool) -> None:
    """Value check of scores (one host sync): NaN always, [0, 1] for probabilities, inf for softmax."""
    if is_compiling() or x.numel() == 0:
        return
    with torch.no_grad():
        bad = torch.isnan(x)
        if probs:
            bad |= (x < 0) | (x > 1)
        elif finite:
            bad |= torch.isinf(x)
        if not bool(bad.any()):
            return
        first = x[bad][0].item()
        count = int(bad.sum())
    if probs:
        fail(
            fn,
            name,
            "hold probabilities in [0, 1]",
            f"{count} value(s) outside, e.g. {first:g}",
            raw_got=True,
            hint='Pass input="logits" if these are raw scores.',
        )
    fail(
        fn,
        name,
        "hold finite logits (no NaN" + (" or inf)" if finite else ")"),
        f"{count} bad value(s), e.g. {first:g}",
        raw_got=True,
    )


def _probabilities(x: Tensor, input: str, dim: Optional[int] = None) -> Tensor:
    """Probabilities from checked scores: sigmoid (``dim=None``) or softmax over ``dim``."""
    x = x.detach()
    if x.dtype in (torch.float16, torch.bfloat16):
        # torchmetrics' CPU kernels and the sums below want at least float32.
        x = x.float()
    if input == "probs":
        return x
    return torch.sigmoid(x) if dim is None else torch.softmax(x, dim=dim)


def _binary_batch(
    fn: str, preds: Any, target: Any, *, input: str, validate: bool
) -> tuple[Tensor, Tensor]:
    """Check one binary batch; return (probabilities (N,), int64 labels (N,))."""
    check_pair(fn, preds, target)
    if preds.dim() != 1:
        fail(fn, "preds", "be 1-D (N,): one score per sample", tuple(preds.shape), raw_got=True)
    if target.is_floating_point() or target.is_complex():
        fail(
            fn,
            "target",
            "be an integer or bool tensor of 0/1 labels",
            f"dtype {fmt(target.dtype)}",
            kind=TypeError,
            raw_got=True,
            hint="Convert it with `.long()`.",
        )
    if validate and not is_compiling() and target.numel() and target.dtype != torch.bool:
        with torch.no_grad():
            bad = (target != 0) & (target != 1)
            if bool(bad.any()):
                first = int(target[bad][0])
                fail(
                    fn,
                    "target",
                    "hold binary labels in {0, 1}",
                    f"{int(bad.sum())} value(s) outside, e.g. {first}",
                    raw_got=True,
                )
    if validate:
        _check_values(fn, "preds", preds, probs=input == "probs", finite=False)
    return _probabilities(preds, input), target.long()


def _multiclass_batch(
    fn: str,
    preds: Any,
    target: Any,
    *,
    num_classes: int,
    input: str,
    ignore_index: Optional[int],
) -> tuple[Tensor, Tensor]:
    """Check one multiclass batch; return (probabilities (M, C), int64 ids (M,)), ignored dropped."""
    check_tensor(fn, "preds", preds)
    check_tensor(fn, "target", target)
    check_floating(fn, "preds", preds)
    check_int(fn, "target", target)
    if preds.dim() != 2 or preds.shape[1] != num_classes:
        fail(
            fn,
            "preds",
            f"have shape (N, C) = (N, {num_classes})",
            tuple(preds.shape),
            raw_got=True,
        )
    if target.shape != preds.shape[:1]:
        fail(
            fn,
            "target",
            f"have shape (N,) = ({preds.shape[0]},) for `preds` of shape {tuple(preds.shape)}",
            tuple(target.shape),
            raw_got=True,
        )
    check_same_device(fn, "target", target, "preds", preds)
    check_class_ids(fn, "target", target, num_classes, ignore_index=ignore_index, validate=True)
    _check_values(fn, "preds", preds, probs=input == "probs", finite=True)
    if ignore_index is not None:
        keep = target != ignore_index
        preds, target = preds[keep], target[keep]
    return _probabilities(preds, input, dim=1), target.long()


# ----------------------------------------------------------------------------------------------
# BestF1
# ----------------------------------------------------------------------------------------------


def _best_f1(scores: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Exact max F1 over the thresholds "positive iff score >= s", s among the scores."""
    order = torch.argsort(scores, descending=True)
    s = scores[order]
    tp = torch.cumsum(labels[order].to(torch.int64), dim=0)  # exact counts
    n = s.numel()
    n_pos = tp[-1]
    k = torch.arange(1, n + 1, device=s.device)
    # Predicting the top k positive: F1 = 2 tp / (2 tp + fp + fn) = 2 tp / (k + n_pos).
    f1 = (2 * tp).double() / (k + n_pos).double()
    # Equal scores form one threshold: only the last position of each run is attainable.
    last = torch.ones(n, dtype=torch.bool, device=s.device)
    last[:-1] = s[1:] != s[:-1]
    f1 = torch.where(last, f1, torch.full_like(f1, -1.0))
    best = torch.argmax(f1)  # the first maximum in descending order: the highest threshold
    out = torch.promote_types(scores.dtype, torch.float32)
    return f1[best].to(out), s[best].to(out)


class BestF1(LosslabMetric):
    r"""Maximum F1 over all decision thresholds, and the threshold that attains it (exact).

    For a threshold :math:`s`, predict positive iff :math:`p_i \ge s`; then

    .. math::
        F_1(s) = \frac{2\,TP(s)}{2\,TP(s) + FP(s) + FN(s)} = \frac{2\,TP(s)}{k(s) + P},
        \qquad \text{best\_f1} = \max_s F_1(s),

    with :math:`k(s) = |\{i : p_i \ge s\}|` and :math:`P` the number of positives. Every
    batch is kept (``"cat"`` states, O(n) memory); ``compute`` sorts once (O(n log n)), takes
    the cumulative count of positives and evaluates :math:`F_1` at the last position of every
    run of equal scores (tied scores are one threshold). Counts are int64, the ratio float64.

    Threshold policy: the candidates are the distinct observed scores (probabilities when
    ``input="logits"``: the sigmoid is applied first, so ``best_threshold`` is comparable with
    ``binary_metrics(threshold=...)``); among the thresholds attaining the maximum, the
    **highest** is returned, so ``probs >= best_threshold`` reproduces ``best_f1`` exactly.
    Note the ``>=``: torchmetrics' thresholded metrics predict positive for ``p > threshold``.

    Conventions: no sample (``compute`` before ``update``): both values NaN (torchmetrics
    warns). No positive label: every threshold gives F1 = 0 (sklearn's ``zero_division=0``);
    ``best_f1 = 0`` and ``best_threshold`` is the highest score.

    ``compute`` returns a dict ``{"best_f1": ..., "best_threshold": ...}`` of 0-d tensors (in
    the probabilities' dtype, at least float32); a ``MetricCollection`` flattens it into two
    keys ``best_f1`` and ``best_threshold`` (with the collection's prefix).

    Args:
        input: ``"logits"`` (sigmoid applied) or ``"probs"`` (checked in [0, 1]).
        validate: check the values of every batch (labels in {0, 1}, no NaN, probabilities in
            [0, 1]; one host sync). Shapes and dtypes are always checked.
        kwargs: torchmetrics ``Metric`` options (``dist_sync_on_step``, ``process_group``, ...).

    Inputs of ``update(preds, target)``: ``preds`` (N,) floating scores, ``target`` (N,)
    integer or bool labels in {0, 1}.

    Reference: Lipton, Elkan and Naryanaswamy, "Optimal Thresholding of Classifiers to Maximize
    F1 Measure", ECML PKDD 2014 (the F1-optimal threshold is found by scanning sorted scores).

    >>> import torch
    >>> metric = BestF1(input="probs")
    >>> metric.update(torch.tensor([0.9, 0.4, 0.65]), torch.tensor([1, 0, 1]))
    >>> metric.update(torch.tensor([0.3, 0.65, 0.1]), torch.tensor([1, 0, 0]))
    >>> {k: round(v.item(), 4) for k, v in metric.compute().items()}
    {'best_f1': 0.75, 'best_threshold': 0.3}
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    scores: list[Tensor]
    labels: list[Tensor]

    def __init__(self, *, input: str = "logits", validate: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.input = check_choice("BestF1", "input", input, INPUTS)
        if not isinstance(validate, bool):
            fail(
                "BestF1",
                "validate",
                "be a bool",
                type(validate).__name__,
                kind=TypeError,
                raw_got=True,
            )
        self.validate = validate
        self.add_state("scores", default=[], dist_reduce_fx="cat", persistent=True)
        self.add_state("labels", default=[], dist_reduce_fx="cat", persistent=True)
        self.add_config_tag()

    def _config(self) -> tuple[Hashable, ...]:
        return (self.input,)  # logits and probabilities store different scores

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Append one batch: ``preds`` (N,) scores, ``target`` (N,) labels in {0, 1}."""
        probs, labels = _binary_batch(
            "BestF1.update", preds, target, input=self.input, validate=self.validate
        )
        self.scores.append(probs)
        # uint8 labels: a quarter of int64, and exchanged by every backend (bool is not).
        self.labels.append(labels.to(torch.uint8))

    def compute(self) -> dict[str, Tensor]:
        """``{"best_f1": F1 max, "best_threshold": the highest score attaining it}``."""
        if no_samples(self.scores):
            nan = nan_like(device=self.device)
            return {"best_f1": nan, "best_threshold": nan.clone()}
        best_f1, threshold = _best_f1(dim_zero_cat(self.scores), dim_zero_cat(self.labels))
        return {"best_f1": best_f1, "best_threshold": threshold}


# ----------------------------------------------------------------------------------------------
# Private fixes of torchmetrics classes (compute / sync only; their update and states are kept)
# ----------------------------------------------------------------------------------------------


class _BinaryBalancedAccuracy(BinaryStatScores):
    """(TPR + TNR) / 2 from torchmetrics' stat-score state; sklearn's convention when a class is absent."""

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def compute(self) -> Tensor:
        tp, fp, tn, fn = (t.sum().double() for t in self._final_state())
        # sklearn: the recall of a class absent from the target is dropped from the mean.
        rates = [tp / (tp + fn)] if tp + fn > 0 else []
        if tn + fp > 0:
            rates.append(tn / (tn + fp))
        if not rates:
            return nan_like(device=tp.device)
        return torch.stack(rates).mean().float()


class _BinaryMCC(BinaryMatthewsCorrCoef):
    """MCC from torchmetrics' int64 confusion matrix, in float64, 0 when undefined (sklearn)."""

    def compute(self) -> Tensor:
        tn, fp, fn, tp = self.confmat.reshape(-1).double()
        if tn + fp + fn + tp == 0:
            return nan_like(device=self.confmat.device)
        denom = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)
        if denom == 0:
            return torch.zeros((), device=self.confmat.device)
        return ((tp * tn - fp * fn) / torch.sqrt(denom)).float()


class _BinaryAUROC(LosslabMetric, BinaryAUROC):
    """torchmetrics' exact AUROC; NaN without data or with one class only (torchmetrics: 0)."""

    def compute(self) -> Tensor:  # type: ignore[override]
        if no_samples(self.preds):
            return nan_like(device=self.device)
        target = dim_zero_cat(self.target)
        positives = int(target.sum())
        if positives == 0 or positives == target.numel():
            return nan_like(dim_zero_cat(self.preds).dtype, self.device)
        return super().compute()


class _BinaryAveragePrecision(LosslabMetric, BinaryAveragePrecision):
    """torchmetrics' exact AP (step-wise, no interpolation); NaN without data or positives."""

    def compute(self) -> Tensor:  # type: ignore[override]
        if no_samples(self.preds) or int(dim_zero_cat(self.target).sum()) == 0:
            return nan_like(device=self.device)
        return super().compute()


def _ece(confidences: Tensor, accuracies: Tensor, n_bins: int) -> Tensor:
    """L1 expected calibration error over ``n_bins`` equal-width bins, the last closed at 1."""
    conf = confidences.double()
    acc = accuracies.double()
    edges = torch.linspace(0.0, 1.0, n_bins + 1, dtype=torch.float64, device=conf.device)
    # Bin b holds edges[b] <= conf < edges[b + 1]; conf == 1 joins the last bin (torchmetrics
    # 1.9 opens a phantom bin n_bins for it: issue #3510).
    index = (torch.bucketize(conf, edges, right=True) - 1).clamp_(0, n_bins - 1)
    sum_conf = torch.zeros(n_bins, dtype=torch.float64, device=conf.device).index_add_(
        0, index, conf
    )
    sum_acc = torch.zeros(n_bins, dtype=torch.float64, device=conf.device).index_add_(0, index, acc)
    # sum_b (n_b / n) |acc_b - conf_b| = sum_b |sum acc - sum conf| / n
    ece = (sum_acc - sum_conf).abs().sum() / conf.numel()
    return ece.to(torch.promote_types(confidences.dtype, torch.float32))


class _BinaryCalibrationError(LosslabMetric, BinaryCalibrationError):
    """torchmetrics' ECE state (positive-class probability vs label), binned as in :func:`_ece`."""

    def compute(self) -> Tensor:
        if no_samples(self.confidences):
            return nan_like(device=self.device)
        return _ece(dim_zero_cat(self.confidences), dim_zero_cat(self.accuracies), self.n_bins)


class _MulticlassCalibrationError(LosslabMetric, MulticlassCalibrationError):
    """torchmetrics' top-label ECE state (max probability vs argmax == target), binned as in :func:`_ece`."""

    def compute(self) -> Tensor:
        if no_samples(self.confidences):
            return nan_like(device=self.device)
        return _ece(dim_zero_cat(self.confidences), dim_zero_cat(self.accuracies), self.n_bins)


# ----------------------------------------------------------------------------------------------
# Collections
# ----------------------------------------------------------------------------------------------


class _BinaryMetrics(CheckedCollection):
    _output_keys = (
        "accuracy",
        "auroc",
        "average_precision",
        "balanced_accuracy",
        "best_f1",
        "best_threshold",
        "calibration_error",
        "f1",
        "mcc",
        "precision",
        "recall",
    )

    # Explicit compute groups: torchmetrics' automatic grouping merges metrics whose states
    # happen to be equal after the first batch, which can be a coincidence (top-1 and top-k
    # accuracy on a batch where both are right); these groups share their update by design.
    _groups_spec = (
        ["accuracy", "balanced_accuracy", "precision", "recall", "f1"],
        ["auroc", "average_precision"],
        ["mcc"],
        ["calibration_error"],
        ["best_f1"],
    )

    def __init__(self, metrics: dict[str, Any], *, input: str, prefix: Optional[str]) -> None:
        super().__init__(
            metrics, prefix=prefix, compute_groups=[list(g) for g in self._groups_spec]
        )
        self.input = input

    def _prepare(self, preds: Any, target: Any) -> tuple[Tensor, Tensor]:
        return _binary_batch(
            "binary_metrics.update", preds, target, input=self.input, validate=True
        )


class _MulticlassMetrics(CheckedCollection):
    _output_keys = ("accuracy", "calibration_error", "macro_f1", "top_k_accuracy")

    def __init__(
        self,
        metrics: dict[str, Any],
        *,
        num_classes: int,
        input: str,
        ignore_index: Optional[int],
        prefix: Optional[str],
    ) -> None:
        # One group per metric: none share a state (see _BinaryMetrics on automatic grouping).
        super().__init__(metrics, prefix=prefix, compute_groups=[[k] for k in sorted(metrics)])
        self.num_classes = num_classes
        self.input = input
        self.ignore_index = ignore_index

    def _prepare(self, preds: Any, target: Any) -> tuple[Tensor, Tensor]:
        return _multiclass_batch(
            "multiclass_metrics.update",
            preds,
            target,
            num_classes=self.num_classes,
            input=self.input,
            ignore_index=self.ignore_index,
        )


def binary_metrics(
    *,
    input: str = "logits",
    threshold: float = 0.5,
    n_bins: int = 15,
    prefix: Optional[str] = None,
) -> MetricCollection:
    r"""The binary classification set: thresholded, ranking, calibration and best-F1 metrics.

    With :math:`p_i` the probability of the positive class (``sigmoid(preds)`` for
    ``input="logits"``), :math:`\hat y_i = [p_i > t]` (torchmetrics' strict ``>``) and the
    counts TP, FP, TN, FN of :math:`\hat y` against the labels:

    .. math::
        \text{accuracy} = \tfrac{TP + TN}{n}, \quad
        \text{balanced\_accuracy} = \tfrac12\big(\tfrac{TP}{TP + FN} + \tfrac{TN}{TN + FP}\big),
        \quad \text{precision} = \tfrac{TP}{TP + FP}, \quad \text{recall} = \tfrac{TP}{TP + FN},

    .. math::
        F_1 = \tfrac{2\,TP}{2\,TP + FP + FN}, \quad
        \text{mcc} = \tfrac{TP \cdot TN - FP \cdot FN}
                          {\sqrt{(TP + FP)(TP + FN)(TN + FP)(TN + FN)}},

    ``auroc`` (exact, trapezoidal ROC area) and ``average_precision``
    (:math:`\sum_k (R_k - R_{k-1}) P_k`, no interpolation) over all distinct scores,
    ``calibration_error`` :math:`= \sum_b \frac{n_b}{n} |\bar y_b - \bar p_b|` over ``n_bins``
    equal-width bins of :math:`p` (L1 ECE of the positive-class probability; bin
    :math:`b` is :math:`[b/B, (b+1)/B)`, the last one closed at 1), and ``best_f1`` /
    ``best_threshold`` from :class:`BestF1` (predict positive iff :math:`p \ge s`).

    Which class computes what: torchmetrics' ``BinaryAccuracy``, ``BinaryPrecision``,
    ``BinaryRecall``, ``BinaryF1Score`` as they are; balanced accuracy from the same stat-score
    state (torchmetrics 1.9 has no balanced accuracy; a ``BinaryStatScores`` subclass, so
    torchmetrics' compute groups share one state for the five); ``BinaryMatthewsCorrCoef``,
    ``BinaryAUROC``, ``BinaryAveragePrecision`` and ``BinaryCalibrationError`` with their
    ``update`` and states but a corrected ``compute``: MCC in float64 (torchmetrics' float32
    sums drift by ~1e-4 on large imbalanced sets) with sklearn's 0 when a marginal is empty
    (torchmetrics returns 1, -1 or eps-limits there); AUROC NaN when only one class is present
    (sklearn raises, torchmetrics returns 0); AP NaN without positives; ECE with a
    probability of exactly 1.0 in the last bin (torchmetrics issue #3510: a phantom extra bin).

    Conventions: a zero denominator in precision / recall / F1 gives 0 (sklearn's
    ``zero_division=0``, torchmetrics' default); ``balanced_accuracy`` averages the recalls
    of the classes present in the labels (sklearn). ``compute()`` before any ``update()``
    warns (torchmetrics' UserWarning) and returns 0 for accuracy, precision, recall, f1 (the
    torchmetrics classes' value) and NaN for every other key. An empty batch is checked and
    skipped. Every batch is checked once, before any metric sees it (dtype, shape, labels in
    {0, 1}, no NaN score, probabilities in [0, 1] for ``input="probs"``; the value checks cost
    two host syncs), and the torchmetrics classes run with ``validate_args=False``.

    Args:
        input: ``"logits"`` (the sigmoid is applied here) or ``"probs"``. Never guessed.
        threshold: decision threshold on the probability, in [0, 1].
        n_bins: number of equal-width calibration bins (>= 1).
        prefix: prepended to every key (e.g. ``"val_"``).

    Returns:
        A ``MetricCollection`` with keys ``accuracy, auroc, average_precision,
        balanced_accuracy, best_f1, best_threshold, calibration_error, f1, mcc, precision,
        recall``. ``update(preds, target)``: ``preds`` (N,) floating, ``target`` (N,) integer or
        bool labels in {0, 1}. All states are persistent (checkpoints resume mid-stream).

    References: scikit-learn's ``sklearn.metrics`` (the conventions above); Guo et al., "On
    Calibration of Modern Neural Networks", ICML 2017 (ECE); Chicco and Jurman, BMC Genomics
    21:6 (2020) (MCC).

    >>> import torch
    >>> metrics = binary_metrics()
    >>> logits = torch.tensor([2.0, -1.0, 0.5, -3.0, 1.5, -0.5, 0.2])
    >>> target = torch.tensor([1, 0, 0, 0, 1, 1, 1])
    >>> metrics.update(logits[:3], target[:3])
    >>> metrics.update(logits[3:], target[3:])
    >>> for key, value in metrics.compute().items():
    ...     print(f"{key}: {value.item():.4f}")
    accuracy: 0.7143
    auroc: 0.8333
    average_precision: 0.8875
    balanced_accuracy: 0.7083
    best_f1: 0.8889
    best_threshold: 0.3775
    calibration_error: 0.3304
    f1: 0.7500
    mcc: 0.4167
    precision: 0.7500
    recall: 0.7500
    """
    fn = "binary_metrics"
    input = check_choice(fn, "input", input, INPUTS)
    threshold = check_float(fn, "threshold", threshold, low=0.0, high=1.0)
    n_bins = check_int_option(fn, "n_bins", n_bins, low=1)  # type: ignore[assignment]
    prefix = check_prefix(fn, prefix)
    # validate_args=False everywhere: the collection has checked the batch already.
    common: dict[str, Any] = {"threshold": threshold, "validate_args": False}
    metrics: dict[str, Any] = {
        "accuracy": BinaryAccuracy(**common),
        "balanced_accuracy": _BinaryBalancedAccuracy(**common),
        "precision": BinaryPrecision(**common),
        "recall": BinaryRecall(**common),
        "f1": BinaryF1Score(**common),
        "mcc": _BinaryMCC(**common),
        "auroc": _BinaryAUROC(thresholds=None, validate_args=False),
        "average_precision": _BinaryAveragePrecision(thresholds=None, validate_args=False),
        "calibration_error": _BinaryCalibrationError(n_bins=n_bins, norm="l1", validate_args=False),
        "best_f1": BestF1(input="probs", validate=False),
    }
    collection = _BinaryMetrics(metrics, input=input, prefix=prefix)
    collection.persistent(True)
    return collection


def multiclass_metrics(
    num_classes: int,
    *,
    input: str = "logits",
    top_k: int = 5,
    n_bins: int = 15,
    ignore_index: Optional[int] = None,
    prefix: Optional[str] = None,
) -> MetricCollection:
    r"""The multiclass set: micro accuracy, top-k accuracy, macro F1 and top-label ECE.

    With :math:`p_{i\cdot}` the class probabilities (``softmax(preds, dim=1)`` for
    ``input="logits"``), :math:`\hat y_i = \arg\max_c p_{ic}` and :math:`y_i` the label:

    .. math::
        \text{accuracy} = \tfrac1n \textstyle\sum_i [\hat y_i = y_i], \quad
        \text{top\_k\_accuracy} = \tfrac1n \textstyle\sum_i [y_i \in \text{top}_k(p_{i\cdot})],
        \quad \text{macro\_f1} = \tfrac{1}{|K|} \textstyle\sum_{c \in K}
            \tfrac{2\,TP_c}{2\,TP_c + FP_c + FN_c},

    :math:`K` the classes present in the labels or the predictions (the others are left out of
    the mean: torchmetrics and sklearn agree), and ``calibration_error`` the L1 top-label ECE
    :math:`\sum_b \frac{n_b}{n} |\text{acc}_b - \text{conf}_b|` with confidence
    :math:`\max_c p_{ic}` over ``n_bins`` equal-width bins (the last closed at 1).

    torchmetrics' ``MulticlassAccuracy`` (``average="micro"``, ``top_k=1`` and ``top_k``),
    ``MulticlassF1Score(average="macro")`` and ``MulticlassCalibrationError`` (state kept,
    ``compute`` corrected for a confidence of 1.0, torchmetrics issue #3510).

    ``ignore_index``: samples with this label are checked, then dropped before any metric
    sees them (rather than passed to torchmetrics, whose ``ignore_index`` handling has had
    bugs); it may lie outside [0, C) (e.g. -100 or 255). ``top_k`` is never clipped:
    ``top_k > num_classes`` is a ValueError (so the default ``top_k=5`` needs C >= 5). ``compute()`` before ``update()`` warns and returns
    0 for the accuracies and macro F1 (torchmetrics' value) and NaN for the calibration error.
    ``input="probs"`` is checked in [0, 1] but rows are not renormalised.

    Args:
        num_classes: C >= 2.
        input: ``"logits"`` (softmax applied here; must be finite) or ``"probs"``.
        top_k: k of ``top_k_accuracy``, in [1, C].
        n_bins: number of calibration bins (>= 1).
        ignore_index: a label to skip, or None.
        prefix: prepended to every key.

    Returns:
        A ``MetricCollection`` with keys ``accuracy, calibration_error, macro_f1,
        top_k_accuracy``. ``update(preds, target)``: ``preds`` (N, C) floating, ``target`` (N,)
        integer ids in [0, C) or ``ignore_index``.

    References: scikit-learn's ``accuracy_score``, ``top_k_accuracy_score``,
    ``f1_score(average="macro")``; Guo et al., ICML 2017 (top-label ECE).

    >>> import torch
    >>> metrics = multiclass_metrics(3, top_k=2, ignore_index=-100)
    >>> logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.3, 0.2], [-1.0, 2.0, 0.0],
    ...                        [0.0, 0.0, 3.0], [1.0, 2.0, 0.5]])
    >>> target = torch.tensor([0, 2, 1, -100, 0])
    >>> metrics.update(logits[:2], target[:2])
    >>> metrics.update(logits[2:], target[2:])
    >>> for key, value in metrics.compute().items():
    ...     print(f"{key}: {value.item():.4f}")
    accuracy: 0.5000
    calibration_error: 0.3416
    macro_f1: 0.3889
    top_k_accuracy: 1.0000
    """
    fn = "multiclass_metrics"
    num_classes = check_int_option(fn, "num_classes", num_classes, low=2)  # type: ignore[assignment]
    input = check_choice(fn, "input", input, INPUTS)
    if isinstance(top_k, bool) or not isinstance(top_k, int):
        fail(fn, "top_k", "be an int", type(top_k).__name__, kind=TypeError, raw_got=True)
    if not 1 <= top_k <= num_classes:
        fail(
            fn,
            "top_k",
            f"be an int in [1, num_classes={num_classes}]",
            top_k,
            hint="top_k is never clipped to num_classes; pass a smaller top_k.",
        )
    n_bins = check_int_option(fn, "n_bins", n_bins, low=1)  # type: ignore[assignment]
    ignore_index = check_ignore_index(fn, ignore_index)
    prefix = check_prefix(fn, prefix)
    common: dict[str, Any] = {"num_classes": num_classes, "validate_args": False}
    metrics: dict[str, Any] = {
        "accuracy": MulticlassAccuracy(average="micro", top_k=1, **common),
        "top_k_accuracy": MulticlassAccuracy(average="micro", top_k=top_k, **common),
        "macro_f1": MulticlassF1Score(average="macro", **common),
        "calibration_error": _MulticlassCalibrationError(n_bins=n_bins, norm="l1", **common),
    }
    collection = _MulticlassMetrics(
        metrics, num_classes=num_classes, input=input, ignore_index=ignore_index, prefix=prefix
    )
    collection.persistent(True)
    return collection
