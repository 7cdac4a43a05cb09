"""Tests for transmri.models.strided: the strided residual autoencoder (SRCAE)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from transmri.models import ConvAutoEncoder, StridedConvAutoEncoder, StridedEncoder

PAPER_SHAPES = [(108, 128, 108), (105, 127, 105), (105, 126, 105), (77, 92, 77), (32, 32, 32)]


@pytest.mark.parametrize(
    "shape", [*PAPER_SHAPES, (21, 18, 17)], ids=lambda s: "x".join(map(str, s))
)
def test_reconstruction_has_exactly_the_input_shape(shape: tuple[int, int, int]) -> None:
    model = StridedConvAutoEncoder().eval()
    with torch.no_grad():
        out = model(torch.rand(1, 1, *shape))
    assert out["reconstruction"].shape == (1, 1, *shape)
    assert out["code"].shape == (1, 16, *(s // 8 for s in shape))
    assert out["code"].shape[1:] == model.code_shape(shape)


def test_same_code_size_as_the_cae_with_about_60_percent_fewer_parameters() -> None:
    srcae, cae = StridedConvAutoEncoder(), ConvAutoEncoder()
    shape = (108, 128, 108)
    assert srcae.code_shape(shape) == cae.code_shape(shape)
    ratio = srcae.num_parameters() / cae.num_parameters()
    assert 0.3 < ratio < 0.5, ratio
    # Encoder blocks (in, hidden, out): conv k3 = in*hidden*27 + hidden,
    # strided k4 = (in+hidden)*out*64 + out:
    #   (1, 4, 4): 112 + 1284 = 1396; (4, 4, 6): 436 + 3078 = 3514; (6, 2, 16): 326 + 8208 = 8534
    assert srcae.encoder.num_parameters() == 1396 + 3514 + 8534 == 13_444
    assert srcae.num_parameters() == 25_393


def test_gradient_reaches_every_parameter() -> None:
    model = StridedConvAutoEncoder(dropout=0.0)
    x = torch.rand(2, 1, 20, 24, 20)
    F.mse_loss(model(x)["reconstruction"], x).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_dropout_only_in_training() -> None:
    torch.manual_seed(0)
    model = StridedConvAutoEncoder(dropout=0.5)
    x = torch.rand(2, 1, 16, 16, 16)
    assert not torch.equal(model(x)["code"], model(x)["code"])
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x)["reconstruction"], model(x)["reconstruction"])


def test_encoder_is_standalone_and_checks_its_input() -> None:
    encoder = StridedEncoder()
    assert encoder.code_shape((16, 16, 16)) == (16, 2, 2, 2)
    with pytest.raises(ValueError, match=r"input size 7 along H is too small: at least 8 needed"):
        encoder(torch.rand(1, 1, 16, 7, 16))


def test_hidden_must_match_channels() -> None:
    with pytest.raises(ValueError, match=r"hidden: expected 3 channel counts, got 2"):
        StridedConvAutoEncoder(hidden=(2, 2))
