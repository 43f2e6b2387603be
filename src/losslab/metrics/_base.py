r"""Machinery shared by losslab's metrics: one fix for each of three torchmetrics 1.9 pitfalls.

Every metric class of :mod:`losslab.metrics` derives from :class:`LosslabMetric` (alone, or
mixed in front of the torchmetrics class it corrects: ``class _X(LosslabMetric, BinaryAUROC)``).
The base adds nothing to ``update`` / ``compute``; it fixes the machinery around them:

1. **A process without data.** torchmetrics gathers each state with ``all_gather``, which needs
   the same dtype and number of dimensions on every process. A process that never called
   ``update`` holds torchmetrics' stand-in for an empty list state, an empty **1-D float32**
   tensor (its fix of torchmetrics issue #2463), next to int64 labels or ``(N, C)`` scores
   elsewhere; a lazily shaped sum (a 0-d zero that becomes ``(D,)`` at the first update, as
   in ``R2Score``) is 0-d there. gloo aborts the job, or the collective hangs.
   :meth:`LosslabMetric._sync_dist` first exchanges every rank's (dtype, shape) of those
   states, then gives each rank the common dtype and shape (:meth:`~LosslabMetric.
   _align_for_sync`).
2. **Exact states.** ``metric.to(torch.float16)`` and ``set_dtype`` cast every floating state
   (``set_dtype`` the integer ones too): a float64 sum rounds, an int64 count becomes a
   float. States declared with :meth:`~LosslabMetric.add_exact_state` only follow the device.
3. **Compute groups.** ``MetricCollection(compute_groups=True)``, torchmetrics' default,
   merges metrics whose states are equal (``allclose``) after the first batch and from then
   on updates only one of them. It compares state names and values, not classes or options:
   two metrics that differ only in an option (a threshold, a cut-off ``k``, the function
   they wrap) and agree by chance on the first batch would share one state for ever, and
   one would silently report the other's value. :meth:`~LosslabMetric.add_config_tag` adds a
   non-persistent state ``config_tag``, a small number unique in the process to (class,
   the options that change ``update``), so such metrics never compare equal, in our sets
   and in any collection a user builds; identically configured metrics still share.

Also here: the small checks and NaN helpers the metric modules share, and
:class:`CheckedCollection` (check and convert a batch once, then feed every metric).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Hashable, Sequence
from typing import Any, Callable, Optional, Union, cast

import torch
from torch import Tensor
from torchmetrics import Metric, MetricCollection
from torchmetrics.utilities.distributed import gather_all_tensors

from losslab._checks import fail
from losslab.distributed import WIRE_DTYPES

__all__ = [
    "CONFIG_TAG",
    "DTYPES",
    "CheckedCollection",
    "LosslabMetric",
    "check_flag",
    "check_prefix",
    "nan_like",
    "no_samples",
    "rows_of",
]

#: Name of the state added by :meth:`LosslabMetric.add_config_tag`.
CONFIG_TAG = "config_tag"

# Dtypes a synchronized state may have; the position is the code sent over the wire.
DTYPES = WIRE_DTYPES

# Tags of config_tag, per (class, options); see LosslabMetric.add_config_tag.
_TAG_COUNTER = itertools.count(1)
_TAGS: dict[Hashable, int] = {}


# ----------------------------------------------------------------------------------------------
# Small helpers
# ----------------------------------------------------------------------------------------------


def nan_like(dtype: torch.dtype = torch.float32, device: Any = None) -> Tensor:
    """A 0-d NaN of ``dtype`` on ``device``: the value of a quantity undefined on no data.

    >>> nan_like(torch.float64)
    tensor(nan, dtype=torch.float64)
    """
    return torch.tensor(float("nan"), dtype=dtype, device=device)


def no_samples(state: Union[list[Tensor], Tensor]) -> bool:
    """True when a list (``"cat"``) state, or its synced concatenation, holds no element.

    >>> no_samples([]), no_samples([torch.zeros(0)]), no_samples([torch.zeros(2)])
    (True, True, False)
    """
    if isinstance(state, list):
        return all(t.numel() == 0 for t in state)
    return state.numel() == 0


def rows_of(trailing: Sequence[int]) -> str:
    """``(N,)`` / ``(N, 3)``: the shape of a stack of rows with the given trailing shape.

    >>> rows_of(()), rows_of((4, 2))
    ('(N,)', '(N, 4, 2)')
    """
    return "(" + ", ".join(["N", *map(str, trailing)]) + ("," if len(trailing) == 0 else "") + ")"


def check_prefix(fn: str, prefix: Any, *, noun: str = "str") -> Optional[str]:
    """A metric set's ``prefix``: a string or ``None`` (``TypeError`` otherwise).

    ``noun`` is the word the message uses for the type (``"str"`` or ``"string"``: the sets
    were written with either and their messages are kept).

    >>> check_prefix("my_metrics", "val/")
    'val/'
    >>> check_prefix("my_metrics", 3)
    Traceback (most recent call last):
    ...
    TypeError: my_metrics(): `prefix` must be a str or None; got int.
    """
    if prefix is not None and not isinstance(prefix, str):
        expected = f"be a {noun} or None"
        fail(fn, "prefix", expected, type(prefix).__name__, kind=TypeError, raw_got=True)
    return prefix


def check_flag(fn: str, name: str, value: Any) -> bool:
    """A boolean option: exactly ``True`` or ``False`` (``TypeError`` otherwise, also for 0/1).

    >>> check_flag("MyMetric", "validate", True)
    True
    >>> check_flag("MyMetric", "validate", 1)
    Traceback (most recent call last):
    ...
    TypeError: MyMetric(): `validate` must be True or False; got 1.
    """
    if not isinstance(value, bool):
        fail(fn, name, "be True or False", value, kind=TypeError)
    return value


def _dtype_code(dtype: torch.dtype) -> int:
    if dtype not in DTYPES:  # pragma: no cover - every state of ours has one of these dtypes
        raise TypeError(f"cannot synchronize a metric state of dtype {dtype}")
    return DTYPES.index(dtype)


def _row_blocks(value: Union[list[Tensor], Tensor]) -> list[Tensor]:
    """The non-empty row blocks of a list state (or of its synced concatenation)."""
    tensors = value if isinstance(value, list) else [value]
    tensors = [t.unsqueeze(0) if t.dim() == 0 else t for t in tensors]
    return [t for t in tensors if t.shape[0] > 0]


def _to_device(value: Union[list[Tensor], Tensor], device: torch.device) -> Any:
    if isinstance(value, Tensor):
        return value.to(device)
    return [v.to(device) for v in value]


# ----------------------------------------------------------------------------------------------
# The base class
# ----------------------------------------------------------------------------------------------


class LosslabMetric(Metric):
    r"""A torchmetrics ``Metric`` with an idle-rank-safe sync, exact states and a config tag.

    Subclass it (``class M(LosslabMetric)``) or mix it in front of a torchmetrics class
    (``class M(LosslabMetric, R2Score)``); it defines no ``__init__``. Three services:

    * **Sync that survives a process without data** (always on). Before torchmetrics gathers
      the states, every process publishes, for each list (``"cat"``) state and each tensor
      state not declared exact, (has data, dtype, shape) through ``dist_sync_fn``: one small
      collective, a second one for the shapes when a state is not 0-d. Then a list state
      that is empty on a process holds an empty tensor ``(0, *trailing)`` of the common dtype,
      a 0-d tensor state next to ``(D,)`` elsewhere is broadcast to ``(D,)`` (a lazily
      shaped sum that never saw a batch is a zero), and every process casts to the dtype
      promoted (``torch.promote_types``) over the processes holding data. Processes whose
      shapes disagree raise ``ValueError`` together (instead of hanging). Every process sees
      the same table, so all take the same branch. Exact states (fixed dtype and shape by
      construction) are left out: a metric with only exact states costs no extra collective.
    * **Exact states** (:meth:`add_exact_state`): ``.to(...)`` and ``set_dtype`` (the calls
      that cast torchmetrics states) move them to the new device but never change their
      dtype: float64 sums stay float64, int64 counts int64, stored batches keep their dtype.
    * **Config tag** (:meth:`add_config_tag`, with :meth:`_config`): a non-persistent 0-d
      state ``config_tag`` holding a small integer unique in this process to (class,
      ``_config()``), so ``MetricCollection``'s automatic compute groups never merge two
      metrics whose updates differ. It is recomputed after unpickling (tags are
      per process) and reduced with ``"max"`` (the same on every rank of one program).

    Conventions: ``_label`` (the class name; metrics with a display name add it) names the
    metric in messages: ``_where`` is ``"<label>.update"``, the sync reports
    ``"<label>.sync"``.

    Reference: the torchmetrics metric contract,
    https://lightning.ai/docs/torchmetrics/stable/pages/implement.html; the empty-rank
    stand-in: torchmetrics issue #2463; compute groups: torchmetrics ``MetricCollection``.

    >>> import torch
    >>> class Total(LosslabMetric):
    ...     def __init__(self, scale=1.0, **kwargs):
    ...         super().__init__(**kwargs)
    ...         self.scale = scale
    ...         self.add_exact_state("total", torch.zeros((), dtype=torch.float64))
    ...         self.add_config_tag()
    ...     def _config(self):
    ...         return (self.scale,)
    ...     def update(self, x):
    ...         self.total = self.total + self.scale * x.double().sum()
    ...     def compute(self):
    ...         return self.total
    >>> metric = Total().set_dtype(torch.float16)  # a plain Metric would cast `total` too
    >>> metric.update(torch.tensor([0.1, 0.2]))
    >>> metric.compute()  # float64 kept: no float16 rounding of the sum
    tensor(0.3000, dtype=torch.float64)
    >>> Total(2.0).config_tag == Total(3.0).config_tag, Total(2.0).config_tag == Total(2.0).config_tag
    (tensor(False), tensor(True))
    """

    _exact_states: tuple[str, ...] = ()

    # ------------------------------------------------------------------ names in messages
    @property
    def _label(self) -> str:
        return type(self).__name__

    @property
    def _where(self) -> str:
        return f"{self._label}.update"

    # ------------------------------------------------------------------ exact states
    def add_exact_state(
        self,
        name: str,
        default: Union[list, Tensor],
        dist_reduce_fx: Optional[Union[str, Callable]] = "sum",
        *,
        persistent: bool = True,
    ) -> None:
        """``add_state`` for a state whose dtype ``.to()`` and ``set_dtype`` keep (device only).

        Use it for float64 sums, int64 counts and list states of stored batches. A tensor
        state declared here keeps its dtype and shape (it is not aligned at sync time); a list
        state keeps the dtype of what is appended and is still aligned.
        """
        self.add_state(name, default, dist_reduce_fx=dist_reduce_fx, persistent=persistent)
        if name not in self._exact_states:
            self._exact_states = (*self._exact_states, name)

    def _apply(self, fn: Callable, exclude_state: Sequence[str] = "") -> torch.nn.Module:
        this = cast(
            LosslabMetric, super()._apply(fn, exclude_state=(*exclude_state, *self._exact_states))
        )
        for key in self._exact_states:
            this._defaults[key] = _to_device(this._defaults[key], this.device)
            setattr(this, key, _to_device(getattr(this, key), this.device))
        return this

    # ------------------------------------------------------------------ config tag
    def _config(self) -> Optional[tuple[Hashable, ...]]:
        """The options that change what ``update`` adds to the states (hashable values).

        Override with the options of the subclass; ``None`` (the default) means no tag.
        Options read by ``compute`` only (an average over classes) belong elsewhere: metrics
        that differ only there may share their states.
        """
        return None

    def add_config_tag(self) -> None:
        """Add the non-persistent state ``config_tag`` from (class, ``self._config()``).

        Call it at the end of ``__init__``, once the options are set.
        """
        self.add_exact_state(CONFIG_TAG, self._config_tag_value(), "max", persistent=False)

    def _config_tag_value(self) -> Tensor:
        config = self._config()
        if config is None:
            raise TypeError(f"{type(self).__name__}._config() must return the options to tag")
        key = (type(self), *config)
        if key not in _TAGS:
            # Small integers: the comparison is allclose (relative tolerance 1e-5), which
            # cannot tell large neighbouring integers apart.
            _TAGS[key] = next(_TAG_COUNTER)
        return torch.tensor(float(_TAGS[key]), dtype=torch.float64)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        if CONFIG_TAG in self._defaults:
            # Tags are per process (and may key on object ids): recompute them here.
            tag = self._config_tag_value().to(self.device)
            self._defaults[CONFIG_TAG] = tag
            setattr(self, CONFIG_TAG, tag.clone())

    # ------------------------------------------------------------------ distributed sync
    def _sync_dist(
        self, dist_sync_fn: Callable = gather_all_tensors, process_group: Optional[Any] = None
    ) -> None:
        self._align_for_sync(dist_sync_fn, process_group or self.process_group)
        super()._sync_dist(dist_sync_fn, process_group=process_group)

    def _align_for_sync(self, dist_sync_fn: Callable, group: Optional[Any]) -> None:
        """Give every rank's states one dtype and shape before torchmetrics gathers them.

        The states aligned: every list state, and every tensor state not declared exact, in
        ``add_state`` order. Per state, a header row (has data, dtype code, ndim) with ndim the
        trailing ndim of a list state (beyond dim 0) or the ndim of a tensor state; then, when
        any ndim is positive, the shapes padded with -1 to the largest ndim.
        """
        keys = [
            key
            for key in self._reductions
            if isinstance(self._defaults[key], list) or key not in self._exact_states
        ]
        if not keys:
            return
        device = self.device
        is_list = [isinstance(self._defaults[key], list) for key in keys]
        local: list[
            Optional[Tensor]
        ] = []  # a row block (list) or the value (tensor); None: no data
        header: list[int] = []
        for key, listed in zip(keys, is_list):
            value = getattr(self, key)
            if listed:
                rows = _row_blocks(value)
                if rows:
                    dtype = functools.reduce(torch.promote_types, (t.dtype for t in rows))
                    local.append(rows[0])
                    header += [1, _dtype_code(dtype), rows[0].dim() - 1]
                else:
                    local.append(None)
                    header += [0, 0, 0]
            else:
                local.append(value)
                header += [1, _dtype_code(value.dtype), value.dim()]
        meta = torch.stack(dist_sync_fn(torch.tensor(header, device=device), group=group))
        meta = meta.view(meta.shape[0], len(keys), 3).cpu()
        ndims = [int(n) for n in meta[:, :, 2].max(dim=0).values]
        shapes: Optional[Tensor] = None
        if sum(ndims) > 0:
            row: list[int] = []
            for ref, listed, nd in zip(local, is_list, ndims):
                own = [] if ref is None else list(ref.shape[1:] if listed else ref.shape)
                row += own + [-1] * (nd - len(own))
            gathered = dist_sync_fn(
                torch.tensor(row, dtype=torch.int64, device=device), group=group
            )
            shapes = torch.stack(gathered).cpu()
        offset = 0
        for i, (key, listed) in enumerate(zip(keys, is_list)):
            nd = ndims[i]
            present = [r for r in range(meta.shape[0]) if int(meta[r, i, 0]) == 1]
            shape_by_rank = {
                r: tuple(int(s) for s in shapes[r, offset : offset + nd] if s >= 0)
                if shapes is not None
                else ()
                for r in present
            }
            offset += nd
            if not present:
                continue  # no rank has data: torchmetrics' own empty stand-in is consistent
            dtype = functools.reduce(
                torch.promote_types, (DTYPES[int(meta[r, i, 1])] for r in present)
            )
            if listed:
                self._align_list(key, shape_by_rank, dtype)
            else:
                self._align_tensor(key, shape_by_rank, dtype)

    def _shape_mismatch(self, key: str, expected: str, got: str) -> None:
        fail(f"{self._label}.sync", key, expected, got, raw_got=True)

    def _align_list(
        self, key: str, trailing_by_rank: dict[int, tuple[int, ...]], dtype: torch.dtype
    ) -> None:
        distinct = sorted(set(trailing_by_rank.values()))
        if len(distinct) > 1:
            got = ", ".join(f"{rows_of(s)} on rank {r}" for r, s in trailing_by_rank.items())
            self._shape_mismatch(key, "have the same shape beyond dim 0 on every process", got)
        rows = _row_blocks(getattr(self, key))
        if not rows:
            where = torch.device("cpu") if self.compute_on_cpu else self.device
            rows = [torch.empty((0, *distinct[0]), dtype=dtype, device=where)]
        setattr(self, key, [t.to(dtype) for t in rows])

    def _align_tensor(
        self, key: str, shape_by_rank: dict[int, tuple[int, ...]], dtype: torch.dtype
    ) -> None:
        # A 0-d value next to (D,) elsewhere is a lazily shaped state that saw no batch.
        shaped = sorted({s for s in shape_by_rank.values() if s})
        if len(shaped) > 1:
            got = ", ".join(f"{s} on rank {r}" for r, s in shape_by_rank.items())
            self._shape_mismatch(key, "have the same shape on every process", got)
        value = getattr(self, key)
        if shaped and tuple(value.shape) != shaped[0]:
            value = value.expand(shaped[0]).contiguous()
        setattr(self, key, value.to(dtype))


# ----------------------------------------------------------------------------------------------
# Collections that check a batch once
# ----------------------------------------------------------------------------------------------


class CheckedCollection(MetricCollection):
    """A ``MetricCollection`` that checks and converts each batch once, then feeds every metric.

    Subclasses define ``_prepare(preds, target) -> (preds, target)`` (checks, conversion) and
    ``_output_keys`` (the keys of ``compute()``, without prefix). An empty batch (no sample,
    or only ignored labels) is checked and then skipped: torchmetrics' stat-score updates
    fail on zero samples. ``forward`` on such a batch returns NaN (``_nan_dtype``) for every
    key and leaves the state unchanged.
    """

    _output_keys: tuple[str, ...] = ()
    _nan_dtype: torch.dtype = torch.float32

    def _prepare(self, preds: Any, target: Any) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def update(self, preds: Tensor, target: Tensor) -> None:  # type: ignore[override]
        preds, target = self._prepare(preds, target)
        if target.numel():
            super().update(preds, target)

    def forward(self, preds: Tensor, target: Tensor) -> dict[str, Any]:
        preds, target = self._prepare(preds, target)
        if target.numel():
            return super().forward(preds, target)
        return {
            self._set_name(k): nan_like(self._nan_dtype, preds.device) for k in self._output_keys
        }
