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
