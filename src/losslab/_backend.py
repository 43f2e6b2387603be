"""The execution backend of loss modules: eager (default) or ``torch.compile``.

``losslab.set_backend("compile")`` (or ``compile=True`` on one module) makes a loss module call a
``torch.compile``-d version of its function. Inductor then generates one fused kernel for the
forward (activation, loss and reduction in one pass over the input) and one for the backward,
with no full-size temporaries: at 2^22 float32 elements the sigmoid focal loss runs within a few
times the cost of ``x * y`` and its peak extra memory is the gradient itself.

Costs, measured on a 2-core CPU with torch 2.13: the first call of each (function, input shape,
dtype, option values) compiles, ~5-15 s cold; a new input shape costs a few seconds more (the
second shape compiles a dynamic-shape kernel that then serves every size). Compiled kernels are
cached twice: in this process (one ``torch.compile`` wrapper per function, shared by every module
that uses it) and on disk by Inductor's FX graph cache (``TORCHINDUCTOR_CACHE_DIR``, by default
under the system temporary directory), so a new process with the same shapes starts in ~2 s.
Dynamo recompiles a function at most ``torch._dynamo.config.cache_size_limit`` times (option
values are baked into the graph: many modules with distinct float options share the limit).

The compiled path needs a C++ compiler at run time on the CPU (Triton on CUDA). Value checks
(targets in range, class ids) cost a host sync and are skipped while compiling, as
``validate=False`` would; shape, dtype and option checks still run (at trace time).
For the functional API compile the function yourself: ``torch.compile(losslab.functional.focal_loss)``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Callable, Optional

import torch

from losslab._checks import check_choice

__all__ = ["BACKENDS", "compiled", "get_backend", "set_backend", "use_backend"]

BACKENDS = ("eager", "compile")

_state = {"backend": "eager"}
_compiled: dict[Callable[..., Any], Callable[..., Any]] = {}


def set_backend(name: str) -> str:
    """Choose how loss modules run: ``"eager"`` (default) or ``"compile"``; returns the previous one.

    Modules built with ``compile=True`` or ``compile=False`` keep their own choice.

    >>> import losslab
    >>> losslab.set_backend("eager")
    'eager'
    """
    check_choice("set_backend", "name", name, BACKENDS)
    previous = _state["backend"]
    _state["backend"] = name
    return previous


def get_backend() -> str:
    """The current backend name (``"eager"`` unless :func:`set_backend` changed it)."""
    return _state["backend"]


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Run a block with another backend: ``with losslab.use_backend("compile"): ...``."""
    previous = set_backend(name)
    try:
        yield
    finally:
        _state["backend"] = previous


def compiled(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``torch.compile(fn)``, built once per function and shared by every module using it."""
    out = _compiled.get(fn)
    if out is None:
        out = _compiled[fn] = torch.compile(fn)
    return out


def wants_compile(flag: Optional[bool]) -> bool:
    """A module's own choice, or the global backend when it made none."""
    return _state["backend"] == "compile" if flag is None else flag
