"""torch.compile smoke test: same values, value checks skipped while tracing (DESIGN: Errors)."""

from __future__ import annotations

import pytest
import torch

import losslab.functional as LF


@pytest.mark.slow
def test_compiled_losses_match_eager_and_skip_value_checks() -> None:
    torch.manual_seed(0)
    x = torch.randn(16, 3, requires_grad=True)
    y = torch.rand(16, 3)

    def both(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return LF.mse_loss(a, b) + LF.bce_with_logits_loss(a, b)

    compiled = torch.compile(both)
    got = compiled(x, y)
    got.backward()
    grad = x.grad.clone()
    x.grad = None
    want = both(x, y)
    want.backward()
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(grad, x.grad)
    # Eagerly this target is refused (values outside [0, 1]); a compiled graph has no host sync.
    bad = y.clone()
    bad[0, 0] = 5.0
    with pytest.raises(ValueError, match=r"`target` must have values in \[0, 1\]"):
        both(x, bad)
    assert torch.isfinite(compiled(x, bad))


# ---------------------------------------------------------------- the compiled backend
import copy  # noqa: E402
import pickle  # noqa: E402

import losslab  # noqa: E402
from losslab import _backend  # noqa: E402


def test_set_backend_validates_and_returns_previous() -> None:
    assert losslab.get_backend() == "eager"
    with pytest.raises(ValueError, match=r"set_backend\(\): `name` must be one of"):
        losslab.set_backend("jit")
    assert losslab.set_backend("compile") == "eager"
    try:
        assert losslab.get_backend() == "compile"
    finally:
        assert losslab.set_backend("eager") == "compile"
    with losslab.use_backend("compile"):
        assert losslab.get_backend() == "compile"
    assert losslab.get_backend() == "eager"


def test_compile_flag_is_an_execution_option_not_a_hyperparameter() -> None:
    loss = losslab.SigmoidFocalLoss(gamma=1.5, compile=True)
    assert "compile" not in loss.hparams
    assert loss.to_spec() == "focal(gamma=1.5, compile=True)"
    rebuilt = losslab.parse(loss.to_spec())
    assert rebuilt._compile is True and rebuilt.hparams == loss.hparams
    for clone in (pickle.loads(pickle.dumps(loss)), copy.deepcopy(loss)):
        assert clone._compile is True
    assert losslab.SigmoidFocalLoss()._compile is None
    with pytest.raises(
        TypeError, match=r"SigmoidFocalLoss\(\): `compile` must be True, False or None; got 'yes'"
    ):
        losslab.SigmoidFocalLoss(compile="yes")


def test_compile_flag_overrides_the_global_backend() -> None:
    assert _backend.wants_compile(None) is False
    with losslab.use_backend("compile"):
        assert _backend.wants_compile(None) is True
        assert _backend.wants_compile(False) is False
    assert _backend.wants_compile(True) is True
    assert _backend.compiled(LF.mse_loss) is _backend.compiled(LF.mse_loss)


def _hot_cases() -> list[tuple[str, losslab.Loss, tuple[torch.Tensor, ...]]]:
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(6, 4, generator=g) * 4
    hard = (torch.rand(6, 4, generator=g) < 0.3).float()
    ids = torch.randint(0, 4, (6,), generator=g)
    seg = torch.randn(2, 3, 5, 5, generator=g)
    seg_ids = torch.randint(0, 3, (2, 5, 5), generator=g)
    scores = torch.randn(3, 7, generator=g)
    rel = torch.randint(0, 3, (3, 7), generator=g).float()
    return [
        ("sigmoid_focal", losslab.SigmoidFocalLoss(gamma=2.0), (logits, hard)),
        ("bce", losslab.BCEWithLogitsLoss(pos_weight=2.0), (logits, hard)),
        ("softmax_focal", losslab.SoftmaxFocalLoss(gamma=0.5), (logits, ids)),
        ("dice", losslab.DiceLoss(mode="multiclass"), (seg, seg_ids)),
        ("lovasz", losslab.parse("lovasz_softmax"), (seg, seg_ids)),
        ("ranknet", losslab.parse("ranknet"), (scores, rel)),
        ("pairwise_hinge", losslab.parse("pairwise_hinge"), (scores, rel)),
    ]


@pytest.mark.slow
@pytest.mark.parametrize("name", [c[0] for c in _hot_cases()])
def test_compiled_module_matches_eager(name: str) -> None:
    """compile=True and the global backend give the eager value and gradient."""
    ((_, loss, (pred, target)),) = [c for c in _hot_cases() if c[0] == name]
    x = pred.clone().requires_grad_()
    want = loss(x, target)
    (want_grad,) = torch.autograd.grad(want, x)
    fast = copy.deepcopy(loss)
    fast._compile = True
    got = fast(x, target)
    assert "Compiled" in type(got.grad_fn).__name__
    (got_grad,) = torch.autograd.grad(got, x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got_grad, want_grad, rtol=1e-5, atol=1e-6)
    with losslab.use_backend("compile"):
        composed = 0.5 * copy.deepcopy(loss) + 0.5 * copy.deepcopy(loss)
        out = composed.evaluate(x, target)
    torch.testing.assert_close(out.total, want, rtol=1e-5, atol=1e-6)
