"""List-valued options arrive from Hydra/OmegaConf as ListConfig: they work like lists."""

from __future__ import annotations

import pickle

import pytest
import torch

import losslab

omegaconf = pytest.importorskip("omegaconf")


@pytest.mark.parametrize(
    ("target", "options", "inputs"),
    [
        (
            "losslab.CrossEntropyLoss",
            {"class_weight": [1.0, 2.0, 0.5]},
            (torch.randn(4, 3), torch.tensor([0, 1, 2, 1])),
        ),
        (
            "losslab.BCEWithLogitsLoss",
            {"pos_weight": [2.0, 3.0]},
            (torch.randn(4, 2), torch.rand(4, 2).round()),
        ),
        (
            "losslab.ClassBalancedLoss",
            {"samples_per_class": [10, 5, 1]},
            (torch.randn(4, 3), torch.tensor([0, 1, 2, 1])),
        ),
        (
            "losslab.DiceLoss",
            {"mode": "multiclass", "class_weight": [1.0, 1.0, 2.0], "classes": [1, 2]},
            (torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 4))),
        ),
    ],
)
def test_listconfig_options_equal_list_options(target: str, options: dict, inputs: tuple) -> None:
    hydra_utils = pytest.importorskip("hydra.utils")
    config = omegaconf.OmegaConf.create({"_target_": target, **options})
    built = hydra_utils.instantiate(config)  # Hydra's default _convert_: ListConfig values
    plain = losslab.parse({"_target_": target, **options})
    torch.testing.assert_close(built(*inputs), plain(*inputs))
    assert built.to_spec() == plain.to_spec()
    assert pickle.loads(pickle.dumps(built)).to_spec() == plain.to_spec()


def test_parse_accepts_an_omegaconf_spec() -> None:
    config = omegaconf.OmegaConf.create(
        {
            "terms": [
                {"loss": "ce", "weight": 0.5, "options": {"class_weight": [1.0, 2.0]}},
                {"loss": "ce"},
            ]
        }
    )
    loss = losslab.parse(config)
    x, y = torch.randn(5, 2), torch.tensor([0, 1, 1, 0, 1])
    want = losslab.parse("0.5*ce(class_weight=[1.0, 2.0]) + ce")
    torch.testing.assert_close(loss(x, y), want(x, y))
