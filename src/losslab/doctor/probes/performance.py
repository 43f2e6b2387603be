"""Time and memory per call against the task's built-in loss, and the growth of time with size.

* Time: forward + backward in one thread, the median of a few repeats after a warm-up, for
  the function and for ``ctx.baseline`` on the same inputs, at the sample's size and at the
  growth sizes below; 20x slower (for a call of at least a millisecond) is a warning,
  anything else information.
* Memory: on CUDA the peak allocated during forward + backward. torch keeps no statistics for
  its CPU allocator, so on the CPU the probe counts the bytes the forward saves for the
  backward (saved-tensor hooks): that is where a pairwise (n, n) matrix shows up. Reported,
  with the baseline's, as evidence.
* Growth: two series of sizes from ~32 to ~4096 elements, a factor 2 apart: growing the batch,
  then the per-sample extent ``make_sample(size=)`` (image side, list length, horizon,
  classes), where an O(n^2) over the pixels or the time steps hides when only the batch grows.
  Each series stops before the probe runs out of its ~1.2 s. The exponent is the log-log slope
  over the three largest sizes of the time above the call's fixed overhead (90 % of its
  fastest time), minimum of the repeats. Above 1.6, where the baseline grows like ~n or not at
  all, for a call of at least 2 ms and 5x the baseline's: a warning, O(n^2) work (a pairwise
  matrix, a Python double loop) where O(n) would do. Ranking losses compare the items of a
  list pairwise: quadratic in the list length is information there.

Timing on a shared machine is noisy: medians and minimums, generous thresholds, and an
absolute floor (a slope measured on sub-millisecond calls is overhead, not growth). A noisy
or incomplete measurement is information, never an error.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Optional

import torch
from torch import Tensor

from losslab.doctor._call import bounded_call
from losslab.doctor._types import Context, Finding, Sample
from losslab.doctor.probes._util import GuardedProbe, fresh, num, shape_of

__all__ = ["PROBE", "PerformanceProbe"]

NAME = "performance"
BUDGET_S = 1.2  # timing budget of the whole probe (two memory calls come on top, bounded)
MEMORY_S = 0.3  # time limit of each memory-measuring call
SLOWER = 20.0  # x the baseline's time: a warning
MIN_SLOW_S = 1e-3  # ... when the call takes at least this long
SLOPE_QUADRATIC = 1.6
SLOPE_LINEAR = 1.3  # the baseline must grow at most like this for a slope to be blamed
MIN_GROWTH_S = 2e-3  # the largest timed call must take this long for the slope to count
ELEMENTS = (32, 64, 128, 256, 512, 1024, 2048, 4096)
FIX_SLOW = "vectorize: replace Python loops over elements with tensor ops"
FIX_GROWTH = (
    "compute the loss element by element (O(n)): no pairwise (n, n) matrix, no Python double loop"
)


class _Timer:
    def __init__(self, ctx: Context, deadline: float) -> None:
        self.ctx, self.deadline = ctx, deadline

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def once(self, fn: Callable[..., Any], sample: Sample) -> Optional[float]:
        """Seconds for one forward + backward of ``fn`` (None when it fails)."""
        pred, target, kwargs = fresh(sample, grad=True)
        limit = max(0.05, min(self.ctx.timeout, self.left()))
        sync = pred.is_cuda and torch.cuda.is_available()
        if sync:
            torch.cuda.synchronize()
        start = time.perf_counter()
        try:
            out = _bounded(self.ctx, fn, (pred, target), kwargs, limit)
            if isinstance(out, Tensor) and out.requires_grad:
                total = out.sum() if out.numel() != 1 else out.reshape(())
                bounded_call(total.backward, (), {}, timeout=limit)
            if sync:
                torch.cuda.synchronize()
        except Exception:  # the function's failure or timeout: nothing measured
            return None
        return time.perf_counter() - start

    def repeat(self, fn: Callable[..., Any], sample: Sample, n: int) -> list[float]:
        """A warm-up call, then up to ``n`` timed ones (fewer when they are slow)."""
        first = self.once(fn, sample)
        if first is None:
            return []
        if first >= 0.05:
            return [first]  # slow: warm-up effects are negligible, repeats unaffordable
        times: list[float] = []
        for _ in range(n):
            if (times and sum(times) > 0.2) or self.left() < 2 * (times[-1] if times else first):
                break
            t = self.once(fn, sample)
            if t is None:
                break
            times.append(t)
        return times or [first]


def _bounded(
    ctx: Context, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: Any, limit: float
) -> Any:
    """The user's function through ``ctx.call`` (with this probe's time limit); the baseline
    and backward passes through ``bounded_call``."""
    if fn is ctx.fn and len(args) == 2:
        return replace(ctx, timeout=limit).call(*args, **kwargs)
    return bounded_call(fn, args, kwargs, timeout=limit)


def _memory(timer: _Timer, fn: Callable[..., Any], sample: Sample) -> tuple[Optional[int], str]:
    """``(bytes, what)``. On CUDA the peak allocated during forward + backward; elsewhere
    (torch keeps no CPU allocator statistics) the bytes the forward keeps for the backward,
    counted with saved-tensor hooks: where a pairwise (n, n) matrix shows up."""
    pred, target, kwargs = fresh(sample, grad=True)
    limit = min(timer.ctx.timeout, MEMORY_S)
    cuda = pred.is_cuda and torch.cuda.is_available()
    seen: dict[int, int] = {}

    def pack(t: Tensor) -> Tensor:
        try:
            storage = t.untyped_storage()
            seen.setdefault(storage.data_ptr(), storage.nbytes())
        except Exception:  # sparse, meta, ...: nothing countable
            pass
        return t

    try:
        if cuda:
            torch.cuda.synchronize(pred.device)
            torch.cuda.reset_peak_memory_stats(pred.device)
            before = torch.cuda.memory_allocated(pred.device)
            out = _bounded(timer.ctx, fn, (pred, target), kwargs, limit)
            if isinstance(out, Tensor) and out.requires_grad:
                bounded_call(out.sum().backward, (), {}, timeout=limit)
            torch.cuda.synchronize(pred.device)
            return torch.cuda.max_memory_allocated(pred.device) - before, "peak bytes (CUDA)"
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            _bounded(timer.ctx, fn, (pred, target), kwargs, limit)
    except Exception:  # the function's failure or timeout: nothing measured
        return None, ""
    return sum(seen.values()), "bytes saved for the backward"


def _slope(points: list[tuple[int, float]]) -> Optional[float]:
    """Least-squares slope of log(time) against log(size)."""
    if len(points) < 2:
        return None
    xs = [math.log(n) for n, _ in points]
    ys = [math.log(max(t, 1e-9)) for _, t in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    if den == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den


def _excess(points: list[tuple[int, float]]) -> list[tuple[int, float]]:
    """Times less 90 % of the fastest one (the call's fixed overhead)."""
    if not points:
        return []
    floor = 0.9 * min(t for _, t in points)
    return [(n, max(t - floor, 1e-7)) for n, t in points]


def _ms(t: Optional[float]) -> Any:
    return None if t is None else num(round(t * 1e3, 4))


@dataclass
class _Series:
    """Timings of one growth series: ``axis`` is "batch" or "size" (the per-sample extent)."""

    axis: str
    points: list[tuple[int, float]] = field(default_factory=list)  # (elements, seconds)
    base: dict[int, float] = field(default_factory=dict)  # elements -> baseline seconds
    samples: dict[int, Sample] = field(default_factory=dict)

    def fit(self) -> tuple[Optional[float], Optional[float], list[tuple[int, float]]]:
        """The growth exponents of the function and of the baseline over the three largest
        sizes, fitted on the time above each one's fixed overhead (a sub-millisecond call is
        mostly overhead, which would flatten any slope)."""
        top = self.points[-3:]
        base_points = [(n, self.base[n]) for n, _ in self.points if n in self.base]
        base_top = [(n, self.base[n]) for n, _ in top if n in self.base]
        slope = _slope(_excess(self.points)[-3:])
        base_slope = (
            _slope(_excess(base_points)[-len(base_top) :]) if len(base_top) == len(top) else None
        )
        return slope, base_slope, top

    def baseline_flat(self) -> bool:
        """The baseline's time hardly grows at all (all overhead): its exponent means nothing."""
        times = [t for _, t in sorted(self.base.items())]
        return len(times) >= 2 and times[-1] - min(times) < max(5e-4, 0.5 * min(times))

    def quadratic(self) -> bool:
        slope, base_slope, top = self.fit()
        if slope is None or (base_slope is None and not self.base):
            return False
        t_top = top[-1][1]
        base_t_top = self.base.get(top[-1][0])
        linear_baseline = self.baseline_flat() or (
            base_slope is not None and base_slope <= SLOPE_LINEAR
        )
        return (
            slope > SLOPE_QUADRATIC
            and linear_baseline
            and t_top >= MIN_GROWTH_S
            and (base_t_top is None or t_top >= 5 * base_t_top)
        )

    def evidence(self) -> dict[str, Any]:
        slope, base_slope, top = self.fit()
        return {
            "elements": [n for n, _ in self.points],
            "ms": [_ms(t) for _, t in self.points],
            "baseline_ms": [_ms(self.base.get(n)) for n, _ in self.points],
            "fitted_on_elements": [n for n, _ in top],
            "exponent": None if slope is None else num(round(slope, 3)),
            "baseline_exponent": None if base_slope is None else num(round(base_slope, 3)),
        }


class PerformanceProbe(GuardedProbe):
    name = NAME
    title = "time and memory per call against the built-in loss; growth with input size"

    def _run(self, ctx: Context) -> list[Finding]:
        if not ctx.samples:
            return [Finding(NAME, "info", "not checked: no sample input for this task")]
        # One thread: on a shared or busy CPU, intra-op threads wait on each other and turn
        # a 0.1 ms op into 100 ms; one thread times the work itself, for both functions.
        threads = torch.get_num_threads()
        try:
            torch.set_num_threads(1)
            return self._measure(ctx)
        finally:
            torch.set_num_threads(threads)

    def _measure(self, ctx: Context) -> list[Finding]:
        start = time.perf_counter()
        timer = _Timer(ctx, start + BUDGET_S)
        sample = ctx.samples[0]
        fn_times = timer.repeat(ctx.fn, sample, 5)
        if not fn_times:
            return [
                Finding(
                    NAME,
                    "info",
                    "not measured: the function (or its backward) fails on the sample input",
                    evidence={"sample": sample.note},
                )
            ]
        base_times = timer.repeat(ctx.baseline, sample, 5) if ctx.baseline is not None else []
        t_fn = statistics.median(fn_times)
        t_base = statistics.median(base_times) if base_times else None

        # Two growth series, half the remaining budget each: the batch, then the per-sample
        # extent (image side, list length, horizon, classes), where an O(n^2) over pixels or
        # time steps hides when only the batch grows.
        series = [self._grow(ctx, _Timer(ctx, start + BUDGET_S / 2), sample, "batch")]
        series.append(self._grow(ctx, timer, sample, "size"))
        series = [s for s in series if s.points]
        return [
            self._time(ctx, timer, sample, t_fn, t_base, series),
            self._growth_finding(series, ctx.task),
        ]

    # ------------------------------------------------------------------------ time, memory
    def _time(
        self,
        ctx: Context,
        timer: _Timer,
        sample: Sample,
        t_fn: float,
        t_base: Optional[float],
        series: list[_Series],
    ) -> Finding:
        ev: dict[str, Any] = {
            "sample": sample.note,
            "pred": shape_of(sample.pred),
            "ms_per_call": _ms(t_fn),
            "baseline_ms_per_call": _ms(t_base),
            "measured": "forward + backward in one thread, median of repeats after a warm-up",
        }
        # The ratio at the sample's size and at every growth size both were timed at.
        ratios: list[tuple[float, float, int, str]] = []
        if t_base:
            ratios.append((t_fn / t_base, t_fn, sample.pred.numel(), "sample"))
        for s in series:
            for n, t in s.points:
                if s.base.get(n):
                    ratios.append((t / s.base[n], t, n, s.axis))
        worst = max((r for r in ratios if r[1] >= MIN_SLOW_S), default=None)
        if ratios:
            ev["ratio"] = num(round(ratios[0][0], 3))
        if worst is not None:
            ev["worst_ratio"] = num(round(worst[0], 3))
            ev["worst_ratio_at_elements"] = worst[2]

        # Memory at the largest size whose call is fast.
        fast = [(n, s.samples[n]) for s in series for n, t in s.points if t < 0.05]
        at = max(fast, key=lambda x: x[0])[1] if fast else None
        if at is not None:
            used, what = _memory(timer, ctx.fn, at)
            base_used, _ = _memory(timer, ctx.baseline, at) if ctx.baseline else (None, "")
            ev["memory_at_elements"] = at.pred.numel()
            ev["memory"] = what or "not measured (the call failed)"
            ev["bytes"] = used
            ev["baseline_bytes"] = base_used
            if used is not None and base_used:
                ev["memory_ratio"] = num(round(used / base_used, 3))
        else:
            ev["memory"] = "not measured (every call too slow)"

        if t_base is None and not any(s.base for s in series):
            return Finding(
                NAME,
                "info",
                f"{t_fn * 1e3:.3g} ms per call (forward + backward); no baseline to compare",
                evidence=ev,
            )
        if worst is not None and worst[0] >= SLOWER:
            return Finding(
                NAME,
                "warning",
                f"{worst[0]:.0f}x slower than the task's built-in loss "
                f"({worst[1] * 1e3:.3g} ms per call at {worst[2]} elements)",
                fix=FIX_SLOW,
                evidence=ev,
            )
        ratio = ratios[0][0] if ratios else float("nan")
        return Finding(
            NAME,
            "info",
            f"{t_fn * 1e3:.3g} ms per call, {ratio:.2g}x the task's built-in loss",
            evidence=ev,
        )

    # ------------------------------------------------------------------------------ growth
    def _plan(self, ctx: Context, sample: Sample, axis: str) -> list[dict[str, int]]:
        """``make_sample`` arguments giving ~ELEMENTS elements, growing ``axis``."""
        pred = sample.pred
        if axis == "batch":
            batch = pred.shape[0] if pred.dim() else 1
            per_row = max(1, pred.numel() // max(batch, 1))
            out: list[dict[str, int]] = []
            for n in ELEMENTS:
                b = max(2, round(n / per_row))
                if {"batch": b} not in out:
                    out.append({"batch": b})
            return out if len(out) >= 3 else [{"batch": b} for b in (2, 4, 8, 16)]
        # size: how the element count grows with `size` (linear extents, or a side: squared)
        try:
            small = ctx.make_sample(batch=2, size=4, seed=17).pred.numel()
            large = ctx.make_sample(batch=2, size=8, seed=17).pred.numel()
        except Exception:  # a generator without a size: nothing to grow
            return []
        if large <= small:
            return []  # the size is ignored (a user's sample): nothing to grow
        power = math.log(large / small, 2)
        per_unit = small / 4**power
        out = []
        for n in ELEMENTS:
            size = max(2, round((n / per_unit) ** (1 / power)))
            if {"batch": 2, "size": size} not in out:
                out.append({"batch": 2, "size": size})
        return out

    def _grow(self, ctx: Context, timer: _Timer, sample: Sample, axis: str) -> _Series:
        series = _Series(axis)
        last: Optional[tuple[int, float]] = None
        for args in self._plan(ctx, sample, axis):
            try:
                s = ctx.make_sample(seed=17, **args)
            except Exception:
                break
            n = s.pred.numel()
            if last is not None:
                if n <= last[0]:
                    continue
                # Predict the next cost as if it grew at least quadratically (faster when the
                # last sizes did): stop before the budget runs out.
                recent = _slope(series.points[-2:]) or 2.0
                guess = last[1] * (n / last[0]) ** max(2.0, recent)
                if 3 * guess > timer.left():
                    break
            times = timer.repeat(ctx.fn, s, 3)
            if not times:
                break
            t = min(times)
            series.points.append((n, t))
            series.samples[n] = s
            last = (n, t)
            if ctx.baseline is not None:
                bt = timer.repeat(ctx.baseline, s, 3)
                if bt:
                    series.base[n] = min(bt)
            if timer.left() <= 0 or t > 0.1:
                break
            trend = _slope(series.points[-3:])
            if len(series.points) >= 3 and t >= 0.02 and trend is not None and trend > 3.2:
                break  # clearly super-linear already: larger sizes would only cost time
        return series

    def _growth_finding(self, series: list[_Series], task: str) -> Finding:
        ev: dict[str, Any] = {s.axis: s.evidence() for s in series}
        ev["measured"] = (
            "minimum of repeats; log-log least squares over the three largest sizes, on the "
            "time above 90 % of the fastest call (the fixed overhead)"
        )
        fitted: list[tuple[_Series, float]] = []
        for s in series:
            slope = s.fit()[0]
            if slope is not None:
                fitted.append((s, slope))
        if not fitted:
            return Finding(
                NAME,
                "info",
                "growth not measured: fewer than two input sizes could be timed",
                evidence=ev,
            )
        what = {"batch": "the batch", "size": "the per-sample size"}
        bad = [s for s in series if s.quadratic()]
        if task == "ranking" and [s.axis for s in bad] == ["size"]:
            rank_slope = bad[0].fit()[0] or 0.0
            return Finding(
                NAME,
                "info",
                f"time grows like n^{rank_slope:.2g} with the list length (expected for a ranking "
                "loss that compares the items of a list pairwise)",
                evidence=ev,
            )
        if bad:
            s = bad[0]
            top_slope, base_slope, _ = s.fit()
            base = "constant" if s.baseline_flat() or base_slope is None else f"n^{base_slope:.2g}"
            return Finding(
                NAME,
                "warning",
                f"time grows like n^{top_slope or 0.0:.2g} with {what[s.axis]} (the built-in loss: "
                f"{base}): O(n^2) work where O(n) would do (expected only for alignment or "
                "all-pairs losses)",
                fix=FIX_GROWTH,
                evidence=ev,
            )
        parts = [f"n^{max(slope, 0.0):.2g} with {what[s.axis]}" for s, slope in fitted]
        return Finding(
            NAME,
            "info",
            "time grows like " + ", ".join(parts),
            evidence=ev,
        )


PROBE = PerformanceProbe()
