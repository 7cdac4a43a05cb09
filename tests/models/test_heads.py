"""Tests for transmri.models.heads: GAP and flatten heads."""

from __future__ import annotations

import pytest
import torch

from transmri.models import ClassifierHead

ADNI_CODE = (16, 13, 16, 13)  # CAE code of a 108x128x108 volume


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_gap_head_is_far_smaller_than_flatten() -> None:
    gap = ClassifierHead(ADNI_CODE, 2)
    flat = ClassifierHead(ADNI_CODE, 2, kind="flatten")
    assert n_params(gap) == 16 * 2 + 2 == 34
    assert n_params(flat) == 16 * 13 * 16 * 13 * 2 + 2 == 86_530
    code = torch.rand(3, *ADNI_CODE)
    assert gap(code).shape == flat(code).shape == (3, 2)


def test_hidden_layer_and_pooled_codes() -> None:
    head = ClassifierHead((16,), 3, hidden=8, dropout=0.2)
    assert n_params(head) == (16 * 8 + 8) + (8 * 3 + 3)
    assert head(torch.rand(4, 16)).shape == (4, 3)
    assert head(torch.rand(4, 16, 2, 2, 2)).shape == (4, 3)


def test_flatten_head_names_the_expected_code_shape() -> None:
    head = ClassifierHead(ADNI_CODE, 2, kind="flatten")
    with pytest.raises(
        ValueError, match=r"expected a code of shape \(N, 16, 13, 16, 13\).*got \(1, 16, 4, 4, 4\)"
    ):
        head(torch.rand(1, 16, 4, 4, 4))


def test_gap_head_checks_channels() -> None:
    with pytest.raises(
        ValueError, match=r"expected a code with 16 channels, got shape \(1, 8, 2, 2, 2\)"
    ):
        ClassifierHead((16,), 2)(torch.rand(1, 8, 2, 2, 2))


def test_bad_kind() -> None:
    with pytest.raises(ValueError, match=r"head: expected one of .*'regional', got 'max'"):
        ClassifierHead((16,), 2, kind="max")


@pytest.mark.parametrize(("norm", "extra"), [("none", 0), ("batch", 32), ("layer", 32)])
def test_feature_norm_options(norm: str, extra: int) -> None:
    head = ClassifierHead(ADNI_CODE, 2, norm=norm)
    assert head.norm_kind == norm
    assert n_params(head) == 34 + extra
    out = head.train()(torch.rand(4, *ADNI_CODE))
    assert out.shape == (4, 2)
    if norm == "none":
        assert [k for k in head.state_dict() if k.startswith("norm")] == []
    layered = ClassifierHead(ADNI_CODE, 2, norm="layer").eval()
    code = torch.rand(2, *ADNI_CODE)
    with torch.no_grad():  # invariant to a common offset of the pooled features
        assert torch.allclose(layered(code), layered(code + 3.0), atol=1e-3)


def test_bad_norm() -> None:
    with pytest.raises(ValueError, match=r"norm: expected one of 'none', 'batch', 'layer'"):
        ClassifierHead((16,), 2, norm="group")


def test_batch_norm_head_trains_on_a_batch_of_one() -> None:
    head = ClassifierHead((16,), 2, norm="batch").train()
    code = torch.rand(1, 16, 2, 2, 2)
    out = head(code)  # plain BatchNorm1d raises here; the running statistics are used
    out.sum().backward()
    assert out.shape == (1, 2) and head.layers[-1].weight.grad is not None
    assert torch.allclose(out, head.eval()(code))


def test_regional_head_in_a_classifier_trains_every_layer_and_keeps_the_code() -> None:
    from transmri.models import ConvEncoder, EncoderClassifier, regional_features

    torch.manual_seed(0)
    enc = ConvEncoder(channels=(4, 8, 6))
    model = EncoderClassifier(enc, 2, head="regional")
    assert model.head.layers[-1].in_features == (4 + 8 + 6) * 8
    assert model.config["head"] == "regional" and model.config["norm"] == "batch"
    x = torch.randn(3, 1, 16, 24, 16)  # any shape: the width does not depend on it
    out = model(x)
    assert out["logits"].shape == (3, 2)
    torch.testing.assert_close(out["code"], enc(x))
    out["logits"].sum().backward()
    # the first layer gets a gradient through its own pooled features, not only via the code
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.blocks[0].parameters())
    model.eval()
    with torch.no_grad():
        expected = model.head.layers(model.head.norm(regional_features(enc, x)))
        torch.testing.assert_close(model(x)["logits"], expected)
