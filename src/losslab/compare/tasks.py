"""Per-task adapters of ``losslab compare``: one table says, for each task, how to train and score.

For each task (:data:`ADAPTERS`, one frozen dataclass each):

* the primary metric (early stopping and ranking of losses) and its direction, and the
  default loss specs (what ``losslab compare --task T`` runs without ``--loss``);
* which losses are valid (registry families) and how each term of a spec is called: the
  *view* that turns the model output and the batch into that term's ``(input, target)``
  (:data:`VIEWS`), plus the per-call data the task provides (``group`` for ranking,
  ``insample`` for forecasting), routed only to the terms that accept it;
* loss options that depend on the data, filled from the training split when the spec leaves
  them out (:func:`fill_data_options`): ``samples_per_class`` of ``class_balanced`` (class
  counts of the training split, pixels for segmentation, each at least 1), ``mode`` of segmentation losses
  (``"binary"`` for 2-class data, else ``"multiclass"``, or ``"multilabel"`` for losses that
  have no multiclass mode), ``m`` of ``mase`` (the dataset's season when the window is longer);
  the canonical spec of a run records them;
* how batches are drawn (ranking: whole queries per batch) and how model outputs become the
  arguments of the task's metric collection (``losslab.metrics.for_task``; logits are passed
  with ``input="logits"``).

How the binary task calls class-id losses (``ce``, ``softmax_focal``, ``poly_ce``,
``class_balanced``): the one logit ``x`` is embedded as two columns whose class
probabilities are ``(1 - sigmoid(x), sigmoid(x))`` under the loss's own activation:
``[0, x]`` for softmax losses (so ``ce`` equals ``bce`` exactly) and ``[-x, x]`` for the
per-class sigmoid bases of ``class_balanced`` (``base="bce"|"focal"``), which then count each
example twice, symmetrically: the value is exactly twice the class-weighted binary loss
(Adam is invariant to that factor). So the binary default ``poly_ce`` is Poly-1 on BCE:
``bce + epsilon * (1 - p_t)``. In segmentation, ``class_balanced`` sees one row per pixel,
``(B*H*W, C)``. Elementwise losses (``bce``, ``focal``, ``asl``,
``poly_focal``) see one-hot targets in the multiclass and segmentation tasks;
probability losses (``bce_probs``) see the task's probabilities (sigmoid for one logit,
softmax over classes).

Quantile losses (``pinball``): the model predicts Q values per target (regression ``(B, Q)``,
forecasting ``(B, horizon, Q)``); the levels must be strictly increasing and include 0.5,
whose column is the point forecast that the other terms and the point metrics see (the
forecasting metrics also get the quantiles: ``pinball`` and ``coverage@P``).
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from losslab._checks import fail
from losslab._registry import lookup
from losslab.compare._types import TASKS, Split, TaskData
from losslab.compose import LossOutput, parse
from losslab.compose.weighted_sum import WeightedSum
from losslab.losses.base import Loss

__all__ = [
    "ADAPTERS",
    "CLASS_ID_LOSSES",
    "VIEWS",
    "Batch",
    "LossPlan",
    "TaskAdapter",
    "compute_metrics",
    "fill_data_options",
    "get_adapter",
    "loss_output",
    "metric_higher_is_better",
    "prepare_loss",
    "validate_spec",
]

#: Classification losses that take (N, C[, ...]) logits and integer class ids.
CLASS_ID_LOSSES = frozenset({"ce", "softmax_focal", "poly_ce", "class_balanced"})
#: Quantile losses: the model predicts one value per quantile.
QUANTILE_LOSSES = frozenset({"pinball"})
#: Registered losses compare cannot train, and why.
UNSUPPORTED = {
    "gaussian_nll": "it needs a predicted variance (a second model output), which the "
    "compare models do not produce",
}

#: view -> what the term receives (``x`` the model output, ``y`` the target).
VIEWS = {
    "logits": "(x, y): logits and float 0/1 targets of one shape",
    "probs": "(sigmoid(x) or softmax(x), y or one-hot y): the task's probabilities",
    "pair_softmax": "([0, x] along dim 1, y as int64 ids): one logit as two softmax columns",
    "pair_sigmoid": "([-x, x] along dim 1, y as int64 ids): one logit as two sigmoid columns",
    "ids": "(x, y): logits (B, C, ...) and class ids",
    "onehot": "(x, one-hot y as float, classes along dim 1)",
    "mask": "(x, y[:, None] as float): segmentation binary mode, elementwise losses",
    "pixels:<view>": "segmentation: <view>, then one row per pixel ((B*H*W, C), (B*H*W,))",
    "ranking": "(scores, relevance as float, group=...): whole queries",
    "point": "(point forecast, y): quantile models give their median column",
    "quantile": "(x (..., Q), y): quantile predictions",
}

REGULARIZER_FAMILY = "regularization"


# ----------------------------------------------------------------------------- batches
@dataclass(frozen=True)
class Batch:
    """A batch of a split: inputs, targets and (ranking) query ids."""

    x: Tensor
    y: Tensor
    group: Optional[Tensor] = None

    def to(self, device: torch.device) -> Batch:
        g = None if self.group is None else self.group.to(device)
        return Batch(self.x.to(device), self.y.to(device), g)


def _take(split: Split, idx: Tensor) -> Batch:
    group = None if split.group is None else split.group[idx]
    return Batch(split.x[idx], split.y[idx], group)


def _query_indices(group: Tensor) -> list[Tensor]:
    """Item indices of each query, queries in ascending id order, items in split order."""
    order = torch.argsort(group, stable=True)
    _, counts = torch.unique_consecutive(group[order], return_counts=True)
    return list(torch.split(order, counts.tolist()))


# ----------------------------------------------------------------------------- loss plans
@dataclass(frozen=True)
class PlanTerm:
    name: str
    weight: float
    module: Loss
    view: Optional[str]  # None: a regularizer (called without inputs)
    kwargs: frozenset[str]  # per-call data this term receives


@dataclass(frozen=True, eq=False)
class LossPlan:
    """A spec prepared for one dataset: the loss module and how to call each of its terms.

    Attributes:
        loss: the parsed loss (``losslab.parse`` of the filled spec).
        spec: the canonical spec (``loss.to_spec()``), including data-filled options.
        task: the task.
        terms: (name, weight, module, view, per-call kwargs) per term, in order.
        single_view: the view shared by every input-taking term (then ``loss.evaluate`` is
            called once), or ``None`` when the terms need different views.
        quantiles: the quantile levels when the model predicts quantiles, else ``None``.
        out_features: outputs per example for :func:`~losslab.compare.models.make_model`.
        filled: the options filled from the data, per term name.
    """

    loss: Loss
    spec: str
    task: str
    terms: tuple[PlanTerm, ...]
    single_view: Optional[str]
    quantiles: Optional[tuple[float, ...]]
    out_features: int
    filled: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def call_kwargs(self) -> frozenset[str]:
        out: frozenset[str] = frozenset()
        for t in self.terms:
            out |= t.kwargs
        return out

    @property
    def has_regularizer(self) -> bool:
        return any(t.view is None for t in self.terms)


def _prediction_constraint(term: Loss) -> Optional[str]:
    """Why a loss cannot take the models' unconstrained outputs, or ``None``."""
    unconstrained = "the compare models output unconstrained values"
    if term.key == "msle":
        return f"msle needs predictions > -1, and {unconstrained}"
    if term.key in ("tweedie", "poisson_nll") and not term.hparams.get("log_input", True):
        return (
            f"{term.key}(log_input=False) needs non-negative predictions, and {unconstrained}: "
            "use log_input=True (the model predicts the log of the mean)"
        )
    return None


def _flat_terms(loss: Loss) -> list[tuple[str, float, Loss]]:
    if isinstance(loss, WeightedSum):
        return [(n, loss.term_weights[n], t) for n, t in loss.term_modules.items()]
    return [(loss.name, 1.0, loss)]


def _required_call_args(term: Loss) -> list[str]:
    fn = type(term).function
    if fn is None:
        return []
    params = inspect.signature(fn).parameters
    return [n for n in type(term).call_arguments() if params[n].default is inspect.Parameter.empty]


def _quantiles_of(term: Loss) -> tuple[float, ...]:
    q = term.hparams["quantiles"]
    values = q.tolist() if isinstance(q, Tensor) else list(q)
    return tuple(float(v) for v in values)


# ----------------------------------------------------------------------------- adapters
@dataclass(frozen=True)
class TaskAdapter:
    """What ``losslab compare`` needs to know about a task.

    Attributes:
        task: one of :data:`~losslab.compare._types.TASKS`.
        primary: the metric key used for early stopping and to rank losses.
        higher_is_better: direction of ``primary``.
        families: registry families whose losses the task can train (regularizers always).
        default_specs: the loss specs compared when none are given.
        provides: per-call data the task passes to the terms that accept it.
        lr: the default Adam learning rate of the task's model (``train_run(lr=None)``).
    """

    task: str
    primary: str
    higher_is_better: bool
    families: tuple[str, ...]
    default_specs: tuple[str, ...]
    provides: tuple[str, ...] = ()
    lr: float = 1e-3

    # -- data-dependent options ---------------------------------------------------------
    def data_options(
        self, cls: type[Loss], given: Mapping[str, Any], data: TaskData
    ) -> dict[str, Any]:
        """Options of ``cls`` to fill from ``data`` when the spec leaves them out."""
        return {}

    # -- validity and views -------------------------------------------------------------
    def term_view(self, term: Loss, data: TaskData) -> str:
        """The view of an input-taking term; ValueError when the task cannot train it."""
        raise NotImplementedError

    def quantile_ok(self, data: TaskData) -> bool:
        return False

    def refuse(self, term: Loss, why: str) -> NoReturn:
        fail(
            "validate_spec",
            "spec",
            f"hold losses the {self.task} task can train ({why})",
            repr(term.key or type(term).__name__),
            raw_got=True,
        )

    def family_check(self, term: Loss) -> None:
        if term.key in UNSUPPORTED:
            self.refuse(term, f"{term.key!r} is not supported: {UNSUPPORTED[term.key]}")
        if term.family not in self.families:
            fams = " or ".join(self.families)
            self.refuse(term, f"{fams} losses; this one is a {term.family} loss")
        why = _prediction_constraint(term)
        if why is not None:
            self.refuse(term, why)

    # -- batches ------------------------------------------------------------------------
    def train_batches(
        self, split: Split, batch_size: int, generator: torch.Generator
    ) -> list[Tensor]:
        """Shuffled index batches of one epoch."""
        perm = torch.randperm(len(split), generator=generator)
        return list(perm.split(batch_size))

    def eval_batches(self, split: Split, batch_size: int = 512) -> list[Tensor]:
        """Sequential index batches for evaluation."""
        return list(torch.arange(len(split)).split(batch_size))

    def batch(self, split: Split, idx: Tensor) -> Batch:
        return _take(split, idx)

    def call_data(self, batch: Batch) -> dict[str, Tensor]:
        """Per-call keyword data of the task (``group``, ``insample``)."""
        return {}

    # -- inputs -------------------------------------------------------------------------
    def view_inputs(
        self, view: str, out: Tensor, batch: Batch, plan: LossPlan
    ) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def point(self, out: Tensor, plan: LossPlan) -> Tensor:
        """The point prediction of a model output (the 0.5 column of a quantile model)."""
        if plan.quantiles is None or len(plan.quantiles) == 1:
            return out
        return out[..., plan.quantiles.index(0.5)]

    def quantile_preds(self, out: Tensor, plan: LossPlan) -> Tensor:
        """A quantile model's output with its (Q,) last dimension, also for Q = 1."""
        return out if plan.out_features > 1 else out.unsqueeze(-1)

    # -- metrics ------------------------------------------------------------------------
    def metric_options(self, data: TaskData, plan: LossPlan) -> dict[str, Any]:
        return {}

    def metric_args(
        self, out: Tensor, batch: Batch, plan: LossPlan
    ) -> tuple[tuple[Tensor, ...], dict[str, Tensor]]:
        """``(args, kwargs)`` of the metric collection's ``update`` for one batch."""
        return (self.point(out, plan), batch.y), {}

    def metrics(self, data: TaskData, plan: LossPlan) -> Any:
        """The task's metric collection (``losslab.metrics.for_task``)."""
        from losslab.metrics import for_task  # imported late: the metrics package is optional here

        return for_task(self.task, **self.metric_options(data, plan))


def _counts(data: TaskData, num_classes: int) -> list[int]:
    y = data.train.y.reshape(-1).round().long()
    counts = torch.bincount(y[(y >= 0) & (y < num_classes)], minlength=num_classes)
    # A class absent from a tiny training subset would get an infinite class-balanced weight.
    return [max(int(c), 1) for c in counts[:num_classes].tolist()]


def _pair(out: Tensor, sign: float) -> Tensor:
    """One logit per example or pixel as two columns along dim 1: [sign * x, x]."""
    x = out.unsqueeze(1) if out.dim() == 1 else out
    first = torch.zeros_like(x) if sign == 0 else sign * x
    return torch.cat([first, x], dim=1)


def _classification_view(term: Loss, *, one_logit: bool) -> str:
    """The view of a classification loss on a one-logit or a C-logit model."""
    if term.key in CLASS_ID_LOSSES:
        if not one_logit:
            return "ids"
        if term.key == "class_balanced" and term.hparams.get("base") in ("bce", "focal"):
            return "pair_sigmoid"
        return "pair_softmax"
    if term.input_kind == "probs":
        return "probs"
    return "logits" if one_logit else "onehot"


@dataclass(frozen=True)
class BinaryAdapter(TaskAdapter):
    def data_options(self, cls, given, data):
        if "samples_per_class" in _init_params(cls) and "samples_per_class" not in given:
            return {"samples_per_class": _counts(data, 2)}
        return {}

    def term_view(self, term, data):
        self.family_check(term)
        return _classification_view(term, one_logit=True)

    def view_inputs(self, view, out, batch, plan):
        y = batch.y
        if view == "logits":
            return out, y.to(out.dtype)
        if view == "probs":
            return torch.sigmoid(out), y.to(out.dtype)
        if view == "pair_softmax":
            return _pair(out, 0.0), y.round().long()
        if view == "pair_sigmoid":
            return _pair(out, -1.0), y.round().long()
        raise ValueError(f"view {view!r} is not a binary view")

    def metric_options(self, data, plan):
        return {"input": "logits"}

    def metric_args(self, out, batch, plan):
        return (out, batch.y.round().long()), {}


@dataclass(frozen=True)
class MulticlassAdapter(TaskAdapter):
    def data_options(self, cls, given, data):
        if "samples_per_class" in _init_params(cls) and "samples_per_class" not in given:
            return {"samples_per_class": _counts(data, int(data.num_classes or 0))}
        return {}

    def term_view(self, term, data):
        self.family_check(term)
        return _classification_view(term, one_logit=False)

    def view_inputs(self, view, out, batch, plan):
        y = batch.y
        if view == "ids":
            return out, y
        onehot = F.one_hot(y, out.shape[1]).to(out.dtype)
        if view == "onehot":
            return out, onehot
        if view == "probs":
            return torch.softmax(out, dim=1), onehot
        raise ValueError(f"view {view!r} is not a multiclass view")

    def metric_options(self, data, plan):
        c = int(data.num_classes or 0)
        return {"num_classes": c, "input": "logits", "top_k": min(5, c)}

    def metric_args(self, out, batch, plan):
        return (out, batch.y), {}


@dataclass(frozen=True)
class RegressionAdapter(TaskAdapter):
    def term_view(self, term, data):
        self.family_check(term)
        if term.key in QUANTILE_LOSSES:
            if not self.quantile_ok(data):
                self.refuse(term, "quantile losses need a 1-D target here")
            return "quantile"
        return "point"

    def quantile_ok(self, data):
        return data.train.y.dim() == 1

    def view_inputs(self, view, out, batch, plan):
        if view == "point":
            return self.point(out, plan), batch.y
        if view == "quantile":
            return self.quantile_preds(out, plan), batch.y
        raise ValueError(f"view {view!r} is not a regression view")


@dataclass(frozen=True)
class SegmentationAdapter(TaskAdapter):
    @staticmethod
    def binary_mode(data: TaskData) -> bool:
        return int(data.num_classes or 0) == 2

    def data_options(self, cls, given, data):
        params = _init_params(cls)
        if "samples_per_class" in params and "samples_per_class" not in given:
            return {"samples_per_class": _counts(data, int(data.num_classes or 0))}  # pixels
        if "mode" not in params or "mode" in given:
            return {}
        if self.binary_mode(data):
            return {"mode": "binary"}
        for mode in ("multiclass", "multilabel"):
            try:
                cls(**given, mode=mode)
            except (TypeError, ValueError):
                continue
            return {"mode": mode}
        return {}

    def term_view(self, term, data):
        self.family_check(term)
        binary = self.binary_mode(data)
        if term.family == "classification":
            view = _classification_view(term, one_logit=binary)
            if term.key == "class_balanced":  # (N, C) logits only: one row per pixel
                return "pixels:" + view
            return {"logits": "mask", "probs": "probs"}.get(view, view)
        mode = term.hparams.get("mode", "binary")
        if (mode == "binary") != binary:
            c = data.num_classes
            want = "binary" if binary else "multiclass' or 'multilabel"
            self.refuse(
                term,
                f"{term.key}(mode={mode!r}) does not fit {c}-class data: use mode='{want}'",
            )
        if mode == "multilabel":
            return "mask" if binary else "onehot"
        return "ids"

    def view_inputs(self, view, out, batch, plan):
        y = batch.y
        if view.startswith("pixels:"):
            logits, ids = self.view_inputs(view[len("pixels:") :], out, batch, plan)
            return logits.movedim(1, -1).reshape(-1, logits.shape[1]), ids.reshape(-1)
        if view == "ids":
            return out, y
        if view == "pair_softmax":
            return _pair(out, 0.0), y
        if view == "pair_sigmoid":
            return _pair(out, -1.0), y
        if view == "mask":
            return out, y.unsqueeze(1).to(out.dtype)
        if view in ("onehot", "probs"):
            if out.shape[1] == 1:
                dense = y.unsqueeze(1).to(out.dtype)
                probs = torch.sigmoid(out)
            else:
                dense = F.one_hot(y, out.shape[1]).movedim(-1, 1).to(out.dtype)
                probs = torch.softmax(out, dim=1)
            return (probs if view == "probs" else out), dense
        raise ValueError(f"view {view!r} is not a segmentation view")

    def eval_batches(self, split, batch_size=128):
        return super().eval_batches(split, batch_size)

    def metric_options(self, data, plan):
        if self.binary_mode(data):
            return {"mode": "binary", "input": "logits"}
        return {"mode": "multiclass", "num_classes": int(data.num_classes or 0), "input": "logits"}

    def metric_args(self, out, batch, plan):
        return (out, batch.y), {}  # binary mode: (B, 1, H, W) logits with (B, H, W) ids


@dataclass(frozen=True)
class RankingAdapter(TaskAdapter):
    def term_view(self, term, data):
        self.family_check(term)
        return "ranking"

    def train_batches(self, split, batch_size, generator):
        """Whole queries, shuffled, packed until a batch holds at least ``batch_size`` items."""
        queries = _query_indices(_group(split))
        order = torch.randperm(len(queries), generator=generator).tolist()
        batches: list[Tensor] = []
        current: list[Tensor] = []
        size = 0
        for q in order:
            current.append(queries[q])
            size += len(queries[q])
            if size >= batch_size:
                batches.append(torch.cat(current))
                current, size = [], 0
        if current:
            batches.append(torch.cat(current))
        return batches

    def eval_batches(self, split, batch_size=2048):
        queries = _query_indices(_group(split))
        batches: list[Tensor] = []
        current: list[Tensor] = []
        size = 0
        for q in queries:
            current.append(q)
            size += len(q)
            if size >= batch_size:
                batches.append(torch.cat(current))
                current, size = [], 0
        if current:
            batches.append(torch.cat(current))
        return batches

    def call_data(self, batch):
        assert batch.group is not None  # _group() checked the split
        return {"group": batch.group}

    def view_inputs(self, view, out, batch, plan):
        return out, batch.y.to(out.dtype)

    def metric_options(self, data, plan):
        return {"k": 10}

    def metric_args(self, out, batch, plan):
        return (out, batch.y.to(out.dtype)), {"group": batch.group}


def _group(split: Split) -> Tensor:
    if split.group is None:
        fail("RankingAdapter", "split.group", "hold the query id of every item", None)
    return split.group


@dataclass(frozen=True)
class ForecastingAdapter(TaskAdapter):
    def data_options(self, cls, given, data):
        if cls.key == "mase" and "m" not in given:
            m = _season(data)
            return {"m": m} if m != 1 else {}
        return {}

    def term_view(self, term, data):
        self.family_check(term)
        return "quantile" if term.key in QUANTILE_LOSSES else "point"

    def quantile_ok(self, data):
        return True

    def call_data(self, batch):
        return {"insample": batch.x}

    def view_inputs(self, view, out, batch, plan):
        if view == "point":
            return self.point(out, plan), batch.y
        if view == "quantile":
            return self.quantile_preds(out, plan), batch.y
        raise ValueError(f"view {view!r} is not a forecasting view")

    def metric_options(self, data, plan):
        if plan.quantiles is not None:
            return {"m": _season(data), "quantiles": plan.quantiles}
        return {"m": _season(data)}

    def metric_args(self, out, batch, plan):
        if plan.quantiles is not None:  # pinball and coverage too; the point metrics take 0.5
            return (self.quantile_preds(out, plan), batch.y), {"insample": batch.x}
        return (out, batch.y), {"insample": batch.x}


def _season(data: TaskData) -> int:
    """The dataset's season for MASE, if the input window is longer than it, else 1."""
    season = int(data.extra.get("season", 1) or 1)
    window = int(data.train.x.shape[1]) if data.train.x.dim() >= 2 else 0
    return season if 1 <= season < window else 1


#: The task table.
ADAPTERS: dict[str, TaskAdapter] = {
    "binary": BinaryAdapter(
        task="binary",
        primary="average_precision",
        higher_is_better=True,
        families=("classification",),
        default_specs=(
            "bce",
            "bce(pos_weight='auto')",
            "focal",
            "class_balanced(base='focal')",
            "asl",
            "poly_ce",
        ),
    ),
    "multiclass": MulticlassAdapter(
        task="multiclass",
        primary="macro_f1",
        higher_is_better=True,
        families=("classification",),
        default_specs=("ce", "ce(label_smoothing=0.1)", "softmax_focal", "poly_ce"),
    ),
    "regression": RegressionAdapter(
        task="regression",
        primary="rmse",
        higher_is_better=False,
        families=("regression",),
        default_specs=("mse", "mae", "huber", "log_cosh"),
    ),
    "segmentation": SegmentationAdapter(
        task="segmentation",
        primary="dice",
        higher_is_better=True,
        families=("segmentation", "classification"),
        default_specs=("ce", "dice", "0.5*ce + 0.5*dice", "focal_tversky"),
        # The U-Net stays at "all background" for many epochs at 1e-3 (mean Dice ~0.25 after 30).
        lr=3e-3,
    ),
    "ranking": RankingAdapter(
        task="ranking",
        primary="ndcg@10",
        higher_is_better=True,
        families=("ranking",),
        default_specs=("ranknet", "lambda_loss", "listnet", "approx_ndcg"),
        provides=("group",),
    ),
    "forecasting": ForecastingAdapter(
        task="forecasting",
        primary="mase",
        higher_is_better=False,
        families=("regression", "timeseries"),
        default_specs=("mse", "mae", "huber", "soft_dtw(gamma=0.1)"),
        provides=("insample",),
    ),
}


def get_adapter(task: str) -> TaskAdapter:
    """The adapter of ``task`` (ValueError naming the tasks otherwise)."""
    if task not in ADAPTERS:
        from losslab._checks import suggest

        fail("get_adapter", "task", f"be one of {list(TASKS)}", task, hint=suggest(task, TASKS))
    return ADAPTERS[task]


# ----------------------------------------------------------------------------- spec filling
def _init_params(cls: type) -> set[str]:
    try:
        return set(inspect.signature(cls).parameters)
    except (TypeError, ValueError):
        return set()


def _loss_nodes(node: ast.AST) -> Iterator[ast.AST]:
    """The loss names and loss calls of a spec expression (operands of + - * /)."""
    if isinstance(node, ast.BinOp):
        yield from _loss_nodes(node.left)
        yield from _loss_nodes(node.right)
    elif isinstance(node, ast.UnaryOp):
        yield from _loss_nodes(node.operand)
    elif isinstance(node, ast.Name) or (
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    ):
        yield node


def fill_data_options(spec: str, data: TaskData) -> tuple[str, dict[str, dict[str, Any]]]:
    """Add the data-dependent options a spec leaves out; returns ``(spec, filled)``.

    The options are inserted as text into the spec (``class_balanced`` ->
    ``class_balanced(samples_per_class=[1293, 144])``), so everything else keeps the user's
    spelling and :func:`losslab.parse` still reports errors at the user's positions.
    Anything this function does not understand is left for ``parse`` to report.

    >>> import torch
    >>> from losslab.compare._types import Split, TaskData
    >>> split = Split(torch.zeros(5, 2), torch.tensor([0.0, 0.0, 0.0, 1.0, 0.0]))
    >>> data = TaskData("toy", "binary", split, split, split)
    >>> fill_data_options("0.5*bce + 0.5*class_balanced(beta=0.9)", data)[0]
    '0.5*bce + 0.5*class_balanced(beta=0.9, samples_per_class=[4, 1])'
    """
    adapter = get_adapter(data.task)
    text = spec.strip() if isinstance(spec, str) else spec
    if not isinstance(text, str):
        return spec, {}
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError):
        return spec, {}
    raw = text.encode("utf-8")
    line_starts = [0]
    for i, b in enumerate(raw):
        if b == ord("\n"):
            line_starts.append(i + 1)
    inserts: list[tuple[int, bytes]] = []
    filled: dict[str, dict[str, Any]] = {}
    try:
        nodes = list(_loss_nodes(tree.body))
    except RecursionError:
        return spec, {}
    for node in nodes:
        name = node.id if isinstance(node, ast.Name) else node.func.id  # type: ignore[attr-defined]
        if name.startswith("_"):
            continue
        try:
            cls = lookup(name)
        except (TypeError, ValueError):
            continue
        given: dict[str, Any] = {}
        if isinstance(node, ast.Call):
            try:
                given = {
                    kw.arg: ast.literal_eval(kw.value) for kw in node.keywords if kw.arg is not None
                }
            except (ValueError, TypeError, SyntaxError, RecursionError):
                continue
            given.pop("name", None)
            if any(kw.arg is None for kw in node.keywords):
                continue
        options = adapter.data_options(cls, given, data)
        if not options:
            continue
        filled[name] = dict(options)
        listing = ", ".join(f"{k}={v!r}" for k, v in options.items())
        end = line_starts[node.end_lineno - 1] + node.end_col_offset  # type: ignore[attr-defined]
        if isinstance(node, ast.Name):
            inserts.append((end, f"({listing})".encode()))
        else:
            close = end - 1  # the ')' of the call
            before = raw[:close].rstrip()
            sep = "" if before.endswith((b"(", b",")) else ", "
            inserts.append((close, f"{sep}{listing}".encode()))
    for pos, piece in sorted(inserts, reverse=True):
        raw = raw[:pos] + piece + raw[pos:]
    return raw.decode("utf-8"), filled


# ----------------------------------------------------------------------------- preparing
def prepare_loss(spec: str, data: TaskData, *, params: Optional[nn.Module] = None) -> LossPlan:
    """Fill the data options, parse ``spec`` and check every term against ``data``'s task.

    Args:
        spec: a ``losslab.parse`` spec string.
        data: the dataset (its task, classes, training split).
        params: the model, for parameter regularizers (``1e-4*l2``); without it a placeholder
            module is used (enough to validate; the real model is passed for training).

    Raises:
        ValueError: (``losslab.SpecError`` included) the spec is invalid, or names a loss the
            task cannot train (a ranking loss on a binary task, ``dice(mode='binary')`` on
            11-class data, ...), or holds only regularizers.
    """
    fn = "validate_spec"
    if not isinstance(spec, str):
        fail(fn, "spec", "be a spec string", type(spec).__name__, kind=TypeError, raw_got=True)
    adapter = get_adapter(data.task)
    filled_spec, filled = fill_data_options(spec, data)
    if params is None:  # a stand-in for regularizers; built without touching the global RNG
        params = nn.ParameterList([nn.Parameter(torch.zeros(1, 1))])
    loss = parse(filled_spec, params=params)
    terms: list[PlanTerm] = []
    quantiles: Optional[tuple[float, ...]] = None
    for name, weight, module in _flat_terms(loss):
        accepted = set(type(module).call_arguments())
        kwargs = frozenset(accepted & set(adapter.provides))
        if module.input_kind == "none" or module.family == REGULARIZER_FAMILY:
            terms.append(PlanTerm(name, weight, module, None, kwargs))
            continue
        view = adapter.term_view(module, data)
        missing = [a for a in _required_call_args(module) if a not in adapter.provides]
        if missing:
            adapter.refuse(
                module, f"it needs `{missing[0]}` per call, which this task does not provide"
            )
        if view == "quantile":
            q = _quantiles_of(module)
            if 0.5 not in q or list(q) != sorted(set(q)):
                fail(
                    fn,
                    "spec",
                    "give quantile losses strictly increasing levels that include 0.5 "
                    f"(the point forecast the {data.task} task is scored on)",
                    list(q),
                    raw_got=True,
                )
            if quantiles is not None and q != quantiles:
                fail(
                    fn,
                    "spec",
                    "use one set of quantiles for all its quantile terms",
                    f"{list(quantiles)} and {list(q)}",
                    raw_got=True,
                )
            quantiles = q
        terms.append(PlanTerm(name, weight, module, view, kwargs))
    views = {t.view for t in terms if t.view is not None}
    if not views:
        fail(fn, "spec", "hold at least one loss of the predictions (not only regularizers)", spec)
    from losslab.compare.models import default_out_features

    out_features = len(quantiles) if quantiles is not None else default_out_features(data)
    return LossPlan(
        loss=loss,
        spec=loss.to_spec(),
        task=data.task,
        terms=tuple(terms),
        single_view=next(iter(views)) if len(views) == 1 else None,
        quantiles=quantiles,
        out_features=out_features,
        filled=filled,
    )


def loss_output(plan: LossPlan, out: Tensor, batch: Batch) -> LossOutput:
    """Evaluate the plan's loss on a model output: a :class:`~losslab.LossOutput`.

    When every term shares one view, this is ``plan.loss.evaluate(input, target, **data)``
    with the task's per-call data (``group``, ``insample``) that some term accepts.
    Otherwise each term is called with its own view and the output is assembled the same
    way (``total = sum(weight * component)``).
    """
    adapter = ADAPTERS[plan.task]
    data = adapter.call_data(batch)
    cache: dict[str, tuple[Tensor, Tensor]] = {}

    def inputs(view: str) -> tuple[Tensor, Tensor]:
        if view not in cache:
            cache[view] = adapter.view_inputs(view, out, batch, plan)
        return cache[view]

    if plan.single_view is not None:
        kwargs = {k: v for k, v in data.items() if k in plan.call_kwargs}
        return plan.loss.evaluate(*inputs(plan.single_view), **kwargs)
    components: dict[str, Tensor] = {}
    weights: dict[str, float] = {}
    for term in plan.terms:
        routed = {k: v for k, v in data.items() if k in term.kwargs}
        if term.view is None:
            components[term.name] = term.module(**routed)
        else:
            components[term.name] = term.module(*inputs(term.view), **routed)
        weights[term.name] = term.weight
    total = sum(weights[n] * c for n, c in components.items())
    return LossOutput(total=total, components=components, weights=weights)  # type: ignore[arg-type]


def validate_spec(spec: str, data: TaskData) -> str:
    """Check that ``spec`` can train on ``data`` before any training; returns the canonical spec.

    Parses the spec (with the data-filled options) and checks every term against the task
    (:func:`prepare_loss`), then evaluates the loss on the whole training split, in
    evaluation batches, with an untrained model (no gradients): a loss whose value checks
    refuse the data (``poisson_nll`` on negative targets, ...) is reported now, not after
    some epochs. Any problem raises ``ValueError`` with one line.

    >>> import torch
    >>> from losslab.compare._types import Split, TaskData
    >>> split = Split(torch.randn(6, 3), torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0, 0.0]))
    >>> data = TaskData("toy", "binary", split, split, split)
    >>> validate_spec("0.5*bce + 0.5*focal(gamma=1)", data)
    '0.5*bce + 0.5*focal(gamma=1)'
    >>> validate_spec("ranknet", data)
    Traceback (most recent call last):
    ...
    ValueError: validate_spec(): `spec` must hold losses the binary task can train (classification losses; this one is a ranking loss); got 'ranknet'.
    """
    from losslab.compare.models import make_model

    plan = prepare_loss(spec, data)
    model = make_model(data, out_features=plan.out_features, seed=0)
    if plan.has_regularizer:
        plan = prepare_loss(spec, data, params=model)
    model.eval()
    adapter = ADAPTERS[data.task]
    split = data.train
    try:
        with torch.no_grad():
            for idx in adapter.eval_batches(split):
                batch = adapter.batch(split, idx)
                loss_output(plan, model(batch.x), batch).log_dict()
    except (TypeError, ValueError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0].rstrip(".")
        fail(
            "validate_spec",
            "spec",
            f"be a loss that accepts the {data.task} data of {data.name!r}",
            f"{spec!r}, which fails on the training split: {first}",
            raw_got=True,
        )
    return plan.spec


# ----------------------------------------------------------------------------- metrics
def compute_metrics(collection: Any) -> dict[str, float]:
    """``collection.compute()`` as plain floats, sorted by key.

    0-d results become floats; a vector result ``v`` of metric ``key`` (per-class values)
    becomes ``key/0``, ``key/1``, ...; a dict result is flattened the same way.
    """
    out: dict[str, float] = {}

    def put(key: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                put(str(k), v)
        elif isinstance(value, Tensor):
            if value.numel() == 1:
                out[key] = float(value.detach().reshape(()).cpu().double())
            else:
                for i, v in enumerate(value.detach().reshape(-1).cpu().double().tolist()):
                    out[f"{key}/{i}"] = float(v)
        elif isinstance(value, Sequence) and not isinstance(value, str):
            for i, v in enumerate(value):
                put(f"{key}/{i}", v)
        else:
            out[key] = float(value)

    for key, value in collection.compute().items():
        put(str(key), value)
    return dict(sorted(out.items()))


#: Direction of each metric key of the task collections (``None``: no better side).
_DIRECTIONS: dict[str, Optional[bool]] = {
    "accuracy": True,
    "balanced_accuracy": True,
    "precision": True,
    "recall": True,
    "f1": True,
    "mcc": True,
    "auroc": True,
    "average_precision": True,
    "best_f1": True,
    "best_threshold": None,
    "calibration_error": False,
    "top_k_accuracy": True,
    "macro_f1": True,
    "mae": False,
    "rmse": False,
    "mape": False,
    "r2": True,
    "dice": True,
    "iou": True,
    "mrr": True,
    "map": True,
    "mase": False,
    "smape": False,
    "wape": False,
    "pinball": False,
}


def metric_higher_is_better(key: str) -> Optional[bool]:
    """Whether a larger value of metric ``key`` is better (``None``: neither, or unknown).

    Per-class keys share their metric's direction (``dice_3``, ``iou/2``); cut-off keys
    too (``ndcg@10``, ``precision@5``); interval coverage (``coverage@80``) has none: its
    target is the nominal level.

    >>> metric_higher_is_better("rmse"), metric_higher_is_better("ndcg@10"), metric_higher_is_better("dice_4")
    (False, True, True)
    """
    base = key.split("/")[0].split("@")[0]
    if base in _DIRECTIONS:
        return _DIRECTIONS[base]
    if base in ("ndcg", "precision"):
        return True
    stem, _, suffix = base.rpartition("_")
    if suffix.isdigit() and stem in _DIRECTIONS:
        return _DIRECTIONS[stem]
    return None
