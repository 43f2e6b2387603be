"""Calling a user's function safely: every exception caught, the time bounded."""

from __future__ import annotations

import signal
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Callable

__all__ = ["CallFailed", "bounded_call"]


class CallFailed(Exception):
    """The user's function raised or ran past its time limit; ``reason`` says which."""

    def __init__(self, reason: str, error: BaseException | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error = error


class _Timeout(BaseException):
    pass


def bounded_call(
    fn: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any], *, timeout: float
) -> Any:
    """``fn(*args, **kwargs)``; a timeout uses SIGALRM in the main thread (Python code and most
    torch ops return to the interpreter often enough); elsewhere the call is unbounded."""
    use_alarm = threading.current_thread() is threading.main_thread() and hasattr(
        signal, "setitimer"
    )
    previous = None
    if use_alarm:

        def _raise(signum: int, frame: Any) -> None:
            raise _Timeout()

        previous = signal.signal(signal.SIGALRM, _raise)
        signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        return fn(*args, **kwargs)
    except _Timeout:
        raise CallFailed(f"did not return within {timeout:g} s") from None
    except Exception as exc:  # the user's code: anything can happen
        raise CallFailed(f"raised {type(exc).__name__}: {exc}".splitlines()[0][:300], exc) from None
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
