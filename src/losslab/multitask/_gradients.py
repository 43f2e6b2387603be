"""Machinery shared by the gradient weightings (GradNorm, PCGrad, MGDA, CAGrad).

* :func:`check_shared_parameters` validates what the user passes as the shared parameters.
* :func:`task_gradients` runs one ``torch.autograd.grad`` per task and returns the per-task
  gradients of the shared parameters flattened into a ``(T, P)`` matrix, together with
  the gradient of the *plain sum* of the task losses for every other leaf reachable from
  the losses (the task heads). Those leaves are found by walking the autograd graph, so the
  heads' gradients come out of the same per-task passes: no extra backward is run, and
  nothing is added to the shared parameters' ``.grad`` behind the weighting's back.
* :func:`accumulate` / :func:`write_flat` add gradients into ``.grad`` as
  ``Tensor.backward`` does (created with the parameter's layout when ``None``).
* :func:`gram` is the float64 Gram matrix ``G G^T`` on the CPU, for the T x T solvers.
* :func:`average_over_ranks` / :func:`sync_task_gradients` average gradients and loss
  values over the processes of the default process group (``sync="global"``), in one
  all-reduce after a tiny size check, so that every rank runs the same surgery.
* :func:`simplex_projection` and :func:`nested_supports` help the simplex solvers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import reduce
from typing import Any, NamedTuple, Optional

import numpy as np
import torch
from torch import Tensor, nn

from losslab._checks import fail, fmt
from losslab.compose.output import LossOutput
from losslab.distributed import world_size

__all__ = [
    "TaskGradients",
    "accumulate",
    "average_over_ranks",
    "check_shared_parameters",
    "feasible",
    "finish",
    "gram",
    "graph_leaves",
    "loss_output",
    "nested_supports",
    "simplex_projection",
    "sync_task_gradients",
    "task_gradients",
    "write_flat",
]

# Columns of G upcast to float64 at a time when the Gram matrix is formed: bounds the extra
# memory to T * 2**20 * 8 bytes whatever the number of shared parameters.
_GRAM_CHUNK = 1 << 20


class TaskGradients(NamedTuple):
    """Per-task gradients of the shared parameters and the heads' plain-sum gradients."""

    matrix: Tensor
    """``(T, P)``: row ``i`` is the flattened gradient of task ``i``'s loss (zeros where a
    shared parameter is unused by that task), in the shared parameters' (promoted) dtype."""
    others: list[Tensor]
    """The other leaves requiring grad reachable from the losses (heads)."""
    other_grads: list[Optional[Tensor]]
    """Gradient of ``sum_i L_i`` for each of ``others`` (``None`` if it received none)."""


def check_shared_parameters(fn: str, shared_parameters: Any) -> list[Tensor]:
    """``shared_parameters`` as a list of distinct leaf tensors requiring grad.

    A non-iterable, a lone tensor, a module, or an element that is not a floating-point
    tensor raises ``TypeError``; an empty iterable, a tensor that does not require grad,
    a non-leaf, a duplicate, or tensors on different devices raise ``ValueError``.
    """
    name = "shared_parameters"
    if isinstance(shared_parameters, Tensor):
        fail(
            fn,
            name,
            "be an iterable of tensors (e.g. `model.trunk.parameters()`)",
            "a single Tensor",
            kind=TypeError,
            raw_got=True,
            hint="Wrap it in a list: [tensor].",
        )
    if isinstance(shared_parameters, nn.Module):
        fail(
            fn,
            name,
            "be an iterable of tensors",
            f"the module {type(shared_parameters).__name__}",
            kind=TypeError,
            raw_got=True,
            hint="Pass `module.parameters()`.",
        )
    if isinstance(shared_parameters, (str, bytes, Mapping)) or not isinstance(
        shared_parameters, Iterable
    ):
        fail(
            fn,
            name,
            "be an iterable of tensors (e.g. `model.trunk.parameters()`)",
            type(shared_parameters).__name__,
            kind=TypeError,
            raw_got=True,
        )
    params = list(shared_parameters)
    if not params:
        fail(
            fn,
            name,
            "hold at least one tensor",
            "an empty iterable",
            raw_got=True,
            hint="A generator such as `model.parameters()` is empty once consumed: pass a list.",
        )
    seen: dict[int, int] = {}
    for k, p in enumerate(params):
        where = f"{name}[{k}]"
        if not isinstance(p, Tensor):
            hint = None
            if isinstance(p, nn.Module):
                hint = "Pass `module.parameters()`, not the modules."
            elif isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str):
                hint = "Pass `module.parameters()`, not `named_parameters()`."
            fail(
                fn, where, "be a Tensor", type(p).__name__, kind=TypeError, raw_got=True, hint=hint
            )
        if not p.is_floating_point():
            fail(
                fn,
                where,
                "be a floating-point tensor",
                f"dtype {fmt(p.dtype)}",
                kind=TypeError,
                raw_got=True,
            )
        if not p.requires_grad:
            fail(
                fn,
                where,
                "require grad",
                f"a tensor of shape {tuple(p.shape)} with requires_grad=False",
                raw_got=True,
                hint="Leave frozen parameters out: [p for p in params if p.requires_grad].",
            )
        if not p.is_leaf:
            fail(
                fn,
                where,
                "be a leaf tensor (a parameter)",
                f"a non-leaf tensor of shape {tuple(p.shape)}",
                raw_got=True,
            )
        if id(p) in seen:
            fail(
                fn,
                where,
                "not repeat a tensor",
                f"the same tensor as {name}[{seen[id(p)]}]",
                raw_got=True,
            )
        seen[id(p)] = k
        if p.device != params[0].device:
            fail(
                fn,
                where,
                f"be on the same device as {name}[0] ({params[0].device})",
                str(p.device),
                raw_got=True,
            )
    return params


def graph_leaves(roots: Sequence[Tensor]) -> list[Tensor]:
    """Every leaf tensor requiring grad that ``roots`` depend on, in a deterministic order.

    Walks the autograd graph (one visit per node): leaves are the ``variable`` of its
    ``AccumulateGrad`` nodes.
    """
    leaves: dict[int, Tensor] = {}
    stack: list[Any] = []
    for r in roots:
        if r.grad_fn is not None:
            stack.append(r.grad_fn)
        elif r.requires_grad:
            leaves.setdefault(id(r), r)
    seen: set[Any] = set()
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        variable = getattr(node, "variable", None)
        if isinstance(variable, Tensor):
            leaves.setdefault(id(variable), variable)
        stack.extend(child for child, _ in node.next_functions)
    return list(leaves.values())


def _dense(g: Tensor) -> Tensor:
    return g.to_dense() if g.layout != torch.strided else g


def task_gradients(
    fn: str,
    losses: Mapping[str, Tensor],
    shared: Sequence[Tensor],
    *,
    with_others: bool = True,
    retain_graph: bool = False,
) -> TaskGradients:
    """One ``torch.autograd.grad`` pass per task over the shared parameters (and the heads).

    Args:
        losses: ``{task: scalar loss}``, already validated, in task order.
        shared: validated shared parameters.
        with_others: also return the plain-sum gradient of every other reachable leaf.
        retain_graph: keep the graph after the last pass (for a later backward); by
            default the last pass frees it.

    Raises ``ValueError`` naming a task whose loss depends on none of the shared parameters.
    """
    names = list(losses)
    values = [losses[t] for t in names]
    for task, value in zip(names, values):
        if not value.requires_grad:
            fail(
                fn,
                f"losses[{task!r}]",
                "depend on the shared parameters",
                "a tensor that does not require grad",
                raw_got=True,
                hint="Was it computed under torch.no_grad() or from detached outputs?",
            )
    shared_ids = {id(p) for p in shared}
    others = [v for v in graph_leaves(values) if id(v) not in shared_ids] if with_others else []
    inputs = [*shared, *others]
    dtype = reduce(torch.promote_types, [p.dtype for p in shared])
    sizes = [p.numel() for p in shared]
    matrix = torch.zeros(len(names), sum(sizes), dtype=dtype, device=shared[0].device)
    other_grads: list[Optional[Tensor]] = [None] * len(others)
    for i, (task, value) in enumerate(zip(names, values)):
        last = i == len(names) - 1
        grads = torch.autograd.grad(
            value, inputs, retain_graph=retain_graph or not last, allow_unused=True
        )
        shared_grads = grads[: len(shared)]
        if all(g is None for g in shared_grads):
            fail(
                fn,
                f"losses[{task!r}]",
                "depend on at least one of the shared parameters",
                "a loss that uses none of them",
                raw_got=True,
                hint="Check that `shared_parameters` are the trunk every task goes through.",
            )
        offset = 0
        for g, n in zip(shared_grads, sizes):
            if g is not None:
                matrix[i, offset : offset + n].copy_(_dense(g).reshape(-1))
            offset += n
        for k, g in enumerate(grads[len(shared) :]):
            if g is not None:
                current = other_grads[k]
                other_grads[k] = g if current is None else current + g
    return TaskGradients(matrix, others, other_grads)


def accumulate(params: Sequence[Tensor], grads: Sequence[Optional[Tensor]]) -> None:
    """Add each gradient into its tensor's ``.grad`` (as ``Tensor.backward`` would)."""
    with torch.no_grad():
        for p, g in zip(params, grads):
            if g is None:
                continue
            g = g.to(p.dtype)
            if p.grad is None:
                if g.layout == torch.strided:
                    # A fresh .grad gets the parameter's strides (channels_last etc.).
                    p.grad = torch.empty_like(p).copy_(g)
                else:
                    p.grad = g.clone()
            elif p.grad.layout != torch.strided and g.layout == torch.strided:
                p.grad = p.grad + g
            else:
                p.grad.add_(g)


def write_flat(shared: Sequence[Tensor], flat: Tensor) -> None:
    """Accumulate the flat ``(P,)`` combined gradient into the shared parameters' ``.grad``."""
    chunks = torch.split(flat, [p.numel() for p in shared])
    accumulate(shared, [c.view(p.shape) for c, p in zip(chunks, shared)])


def finish(shared: Sequence[Tensor], flat: Tensor, grads: TaskGradients) -> None:
    """Write the combined shared gradient and the heads' plain-sum gradients."""
    write_flat(shared, flat)
    accumulate(grads.others, grads.other_grads)


def _check_same_layout(fn: str, count: int, code: int, device: torch.device) -> None:
    """Every rank must pack as many values of the same dtype (else the all-reduce would fail
    or hang): one tiny MAX all-reduce of ``(n, code, -n, -code)`` gives the max and -min."""
    import torch.distributed as dist

    probe = torch.tensor([count, code, -count, -code], dtype=torch.int64, device=device)
    dist.all_reduce(probe, op=dist.ReduceOp.MAX)
    hi, hi_code, lo, lo_code = int(probe[0]), int(probe[1]), -int(probe[2]), -int(probe[3])
    if hi != lo or hi_code != lo_code:
        fail(
            fn,
            "shared_parameters",
            "have the same sizes and dtypes on every process, task heads included "
            "(sync='global' averages their gradients across processes)",
            f"between {lo} and {hi} gradient values per process"
            if hi != lo
            else "different gradient dtypes on different processes",
            raw_got=True,
            hint="Every rank must run the same model and pass the same shared parameters.",
        )


_DTYPE_CODES = {torch.float16: 1, torch.bfloat16: 2, torch.float32: 3, torch.float64: 4}


def average_over_ranks(fn: str, tensors: Sequence[Tensor]) -> list[Tensor]:
    """Each tensor averaged over the processes of the default process group (detached).

    One all-reduce of a flat buffer holding every tensor, in float64 when any of them is
    float64 and float32 otherwise (half gradients are summed in float32), preceded by a
    check that every rank packs the same number of values (``ValueError`` on every rank,
    never a hang). Without a process group of more than one process, returns the tensors.
    """
    n = world_size()
    if n <= 1 or not tensors:
        return list(tensors)
    import torch.distributed as dist

    dtype = reduce(torch.promote_types, [t.dtype for t in tensors], torch.float32)
    device = tensors[0].device
    sizes = [t.numel() for t in tensors]
    _check_same_layout(fn, sum(sizes), _DTYPE_CODES.get(dtype, 0), device)
    with torch.no_grad():
        flat = torch.cat(
            [_dense(t.detach()).reshape(-1).to(device=device, dtype=dtype) for t in tensors]
        )
        dist.all_reduce(flat)
        flat.div_(n)
        parts = torch.split(flat, sizes)
        return [p.view(t.shape).to(device=t.device, dtype=t.dtype) for p, t in zip(parts, tensors)]


def sync_task_gradients(
    fn: str, grads: TaskGradients, values: Tensor
) -> tuple[TaskGradients, Tensor]:
    """``grads`` (matrix and heads' gradients) and the ``(T,)`` loss ``values``, averaged over ranks.

    Under data parallelism with equal shards the global batch's mean loss is the mean of the
    ranks' mean losses, so its per-task gradient matrix is the mean of theirs: after this call
    every rank holds the gradients of the whole global batch. A head that received no gradient
    on a rank contributes zeros.
    """
    heads = [
        g if g is not None else torch.zeros_like(p) for p, g in zip(grads.others, grads.other_grads)
    ]
    averaged = average_over_ranks(fn, [grads.matrix, values.detach(), *heads])
    matrix, mean_values, other_grads = averaged[0], averaged[1], averaged[2:]
    return TaskGradients(matrix, grads.others, list(other_grads)), mean_values


def gram(matrix: Tensor) -> np.ndarray:
    """``matrix @ matrix.T`` in float64 on the CPU (upcast in column chunks), symmetrized."""
    with torch.no_grad():
        if matrix.dtype == torch.float64:
            m = matrix @ matrix.T
        else:
            m = torch.zeros(
                matrix.shape[0], matrix.shape[0], dtype=torch.float64, device=matrix.device
            )
            for start in range(0, matrix.shape[1], _GRAM_CHUNK):
                block = matrix[:, start : start + _GRAM_CHUNK].to(torch.float64)
                m += block @ block.T
        out = m.cpu().numpy()
    return (out + out.T) / 2.0


def loss_output(losses: Mapping[str, Tensor], weights: Mapping[str, float]) -> LossOutput:
    """A detached ``LossOutput`` with ``total == sum(weights[k] * losses[k])``."""
    components = {k: v.detach() for k, v in losses.items()}
    names = list(components)
    total = weights[names[0]] * components[names[0]]
    for k in names[1:]:
        total = total + weights[k] * components[k]
    return LossOutput(total=total, components=components, weights=dict(weights))


def simplex_projection(y: np.ndarray) -> np.ndarray:
    """Euclidean projection of ``y`` onto the probability simplex (sort-based, exact)."""
    u = np.sort(y)[::-1]
    css = np.cumsum(u) - 1.0
    ks = np.arange(1, len(y) + 1)
    active = np.nonzero(u - css / ks > 0)[0]
    if len(active) == 0:  # non-finite input: the projection is undefined
        return np.full(len(y), 1.0 / len(y))
    rho = active[-1]
    theta = css[rho] / (rho + 1.0)
    return np.maximum(y - theta, 0.0)


def nested_supports(w: np.ndarray) -> list[np.ndarray]:
    """Index sets of the k largest entries of ``w``, for k = 1..T (ties broken by index)."""
    order = np.argsort(-w, kind="stable")
    return [np.sort(order[:k]) for k in range(1, len(w) + 1)]


def feasible(w_face: np.ndarray, support: np.ndarray, size: int) -> Optional[np.ndarray]:
    """A face solution as a full simplex point, or ``None`` if it is not feasible.

    Tiny negative entries (rounding) are clipped and the point renormalized.
    """
    if not np.all(np.isfinite(w_face)) or np.any(w_face < -1e-10):
        return None
    w = np.zeros(size)
    w[support] = np.maximum(w_face, 0.0)
    total = w.sum()
    if not total > 0:
        return None
    return w / total
