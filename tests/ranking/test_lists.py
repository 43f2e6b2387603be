"""The two ranking layouts become the same padded lists; their errors."""

from __future__ import annotations

import pytest
import torch

from losslab.losses.ranking._lists import as_lists
from losslab.losses.ranking._ndcg import discounts, gains, ideal_dcg


def test_flat_groups_become_padded_lists_in_id_order() -> None:
    scores = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0], requires_grad=True)
    target = torch.tensor([0.0, 1.0, 2.0, 0.0, 1.0])
    group = torch.tensor([7, 3, 7, 3, 9])
    lists = as_lists("f", scores, target, group=group)
    assert lists.scores.tolist() == [[2.0, 4.0], [1.0, 3.0], [5.0, 0.0]]
    assert lists.target.tolist() == [[1.0, 0.0], [0.0, 2.0], [1.0, 0.0]]
    assert lists.mask.tolist() == [[True, True], [True, True], [True, False]]
    (lists.scores * torch.arange(1.0, 7.0).reshape(3, 2)).sum().backward()
    assert scores.grad.tolist() == [3.0, 1.0, 4.0, 2.0, 5.0]


def test_padded_layout_zeroes_padding() -> None:
    scores = torch.tensor([[1.0, float("nan")], [2.0, 3.0]])
    target = torch.tensor([[1.0, -5.0], [0.0, 2.0]])
    mask = torch.tensor([[True, False], [True, True]])
    lists = as_lists("f", scores, target, mask=mask, nonnegative_target=True)
    assert lists.scores.tolist() == [[1.0, 0.0], [2.0, 3.0]]
    assert lists.lengths.tolist() == [1, 2]


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        (
            dict(scores=torch.randn(4), target=torch.rand(4)),
            ValueError,
            r"`scores` must have shape \(B, n\)",
        ),
        (
            dict(
                scores=torch.randn(2, 3),
                target=torch.rand(2, 3),
                group=torch.zeros(6, dtype=torch.long),
            ),
            ValueError,
            r"`scores` must be 1-D",
        ),
        (
            dict(scores=torch.randn(4), target=torch.rand(4), group=torch.zeros(4)),
            TypeError,
            r"`group` must be an integer tensor",
        ),
        (
            dict(
                scores=torch.randn(4), target=torch.rand(4), group=torch.zeros(3, dtype=torch.long)
            ),
            ValueError,
            r"`group` must have the same shape as `scores` \(4,\)",
        ),
        (
            dict(
                scores=torch.randn(4),
                target=torch.rand(4),
                group=torch.zeros(4, dtype=torch.long),
                mask=torch.ones(4, dtype=torch.bool),
            ),
            ValueError,
            r"`mask` must be None when `group` is given",
        ),
        (
            dict(scores=torch.randn(2, 3), target=torch.rand(2, 3), mask=torch.ones(2, 3)),
            TypeError,
            r"`mask` must be a boolean tensor",
        ),
        (
            dict(
                scores=torch.randn(2, 3),
                target=torch.rand(2, 3),
                mask=torch.ones(3, 2, dtype=torch.bool),
            ),
            ValueError,
            r"`mask` must have the same shape as `scores` \(2, 3\)",
        ),
        (
            dict(scores=torch.randn(2, 3), target=torch.rand(3, 2)),
            ValueError,
            r"`target` must have the same shape as `scores`",
        ),
        (
            dict(scores=torch.randn(2, 3).long(), target=torch.rand(2, 3)),
            TypeError,
            r"`scores` must be a floating-point tensor",
        ),
        (
            dict(scores=torch.randn(2, 3), target=-torch.rand(2, 3) - 0.1, nonnegative_target=True),
            ValueError,
            r"`target` must have values in \[0, inf\)",
        ),
        (
            dict(scores=torch.randn(2, 3), target=torch.rand(2, 3), sample_weight=torch.ones(3)),
            ValueError,
            r"`sample_weight` must have shape \(N,\) = \(2,\)",
        ),
    ],
)
def test_errors(kwargs: dict, exc: type, match: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(exc, match=match):
        as_lists("f", **kwargs)


def test_ndcg_pieces_by_hand() -> None:
    target = torch.tensor([[3.0, 2.0, 0.0, 1.0]])
    mask = torch.ones(1, 4, dtype=torch.bool)
    assert gains(target, mask).tolist() == [[7.0, 3.0, 0.0, 1.0]]
    d = discounts(4, k=None, like=target)
    torch.testing.assert_close(d, 1.0 / torch.log2(torch.tensor([2.0, 3.0, 4.0, 5.0])))
    assert discounts(4, k=2, like=target)[2:].tolist() == [0.0, 0.0]
    # ideal order 3, 2, 1, 0: 7/1 + 3/log2(3) + 1/log2(4) + 0
    expected = 7.0 + 3.0 / torch.log2(torch.tensor(3.0)) + 0.5
    torch.testing.assert_close(ideal_dcg(target, mask, k=None), expected.reshape(1))
