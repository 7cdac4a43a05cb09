"""Tests for transmri.models.cae: the paper's convolutional autoencoder."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from transmri.models import ConvAutoEncoder

PAPER_SHAPES = [(108, 128, 108), (105, 127, 105), (105, 126, 105), (77, 92, 77), (32, 32, 32)]


def smooth_volumes(n: int = 4, size: int = 16) -> torch.Tensor:
    """``n`` Gaussian blobs in [0, 1] at different places, shape (n, 1, size, size, size)."""
    g = torch.linspace(-1, 1, size)
    z, y, x = torch.meshgrid(g, g, g, indexing="ij")
    vols = []
    for i in range(n):
        c = (0.3 * (i - 1.5) / 1.5, 0.1 * i, -0.1 * i)
        vols.append(torch.exp(-((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2) / 0.3))
    return torch.stack(vols)[:, None]


@pytest.mark.parametrize("shape", PAPER_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_reconstruction_has_exactly_the_input_shape(shape: tuple[int, int, int]) -> None:
    model = ConvAutoEncoder().eval()
    with torch.no_grad():
        out = model(torch.rand(1, 1, *shape))
    assert out["reconstruction"].shape == (1, 1, *shape)
    assert out["code"].shape == (1, *model.code_shape(shape))
    assert out["code"].shape == (1, 16, *(s // 8 for s in shape))
    assert out["reconstruction"].min() >= 0 and out["reconstruction"].max() <= 1


def test_paper_code_shape_for_adni_volumes() -> None:
    assert ConvAutoEncoder().code_shape((108, 128, 108)) == (16, 13, 16, 13)


def test_parameter_counts_match_the_paper_architecture() -> None:
    model = ConvAutoEncoder()
    # Encoder (k=3, 27 weights per in/out pair, plus one bias per output):
    #   1->8: 216+8=224; 8->16: 3456+16=3472; 16->32: 13824+32=13856; 32->16: 13824+16=13840
    #   total 31,392
    assert model.encoder.num_parameters() == 31_392
    # Decoder: 16->32: 13856; 32->16: 13840; 16->8: 3456+8=3464; 8->1: 216+1=217 -> 31,377
    assert model.num_parameters() == 31_392 + 31_377 == 62_769
    model.encoder.requires_grad_(False)
    assert model.num_parameters(trainable_only=True) == 31_377


def test_gradient_reaches_every_parameter() -> None:
    model = ConvAutoEncoder(norm="group", activation="elu")
    x = torch.rand(2, 1, 20, 24, 20)
    F.mse_loss(model(x)["reconstruction"], x).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_weights_are_kaiming_with_zero_bias() -> None:
    conv = ConvAutoEncoder().encoder.blocks[2].conv
    assert torch.count_nonzero(conv.bias) == 0
    expected_std = (2 / (16 * 27)) ** 0.5  # fan_in = 16 channels * 3*3*3
    assert conv.weight.std().item() == pytest.approx(expected_std, rel=0.1)


def test_input_noise_only_in_training() -> None:
    torch.manual_seed(0)
    model = ConvAutoEncoder(input_dropout=0.5)
    x = torch.rand(1, 1, 16, 16, 16)
    model.train()
    a, b = model(x)["code"], model(x)["code"]
    assert not torch.equal(a, b)
    model.eval()
    with torch.no_grad():
        c, d = model(x)["code"], model(x)["code"]
    assert torch.equal(c, d)
    assert torch.equal(c, model.encode(x))


def test_eval_mode_is_deterministic_with_batch_norm() -> None:
    model = ConvAutoEncoder(norm="batch").eval()
    x = torch.rand(2, 1, 16, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(x)["reconstruction"], model(x)["reconstruction"])


def test_overfits_four_small_volumes() -> None:
    torch.manual_seed(0)
    x = smooth_volumes()
    model = ConvAutoEncoder()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(50):
        opt.zero_grad()
        loss = F.mse_loss(model(x)["reconstruction"], x)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 10, (losses[0], losses[-1])


def test_layer_groups_are_encoder_blocks_then_decoder() -> None:
    model = ConvAutoEncoder()
    groups = model.layer_groups()
    assert len(groups) == 5
    assert groups[-1] is model.decoder
    assert sum(sum(p.numel() for p in g.parameters()) for g in groups) == model.num_parameters()


@pytest.mark.parametrize(
    ("x", "match"),
    [
        (torch.rand(1, 16, 16, 16), r"expected input \(N, 1, D, H, W\).*got \(1, 16, 16, 16\)"),
        (
            torch.rand(1, 2, 16, 16, 16),
            r"expected input \(N, 1, D, H, W\).*got \(1, 2, 16, 16, 16\)",
        ),
        (
            torch.rand(1, 1, 16, 16, 6),
            r"input size 6 along W is too small: at least 8 needed for 3 pooling steps",
        ),
    ],
)
def test_bad_inputs_raise_with_expected_and_found(x: torch.Tensor, match: str) -> None:
    model = ConvAutoEncoder()
    with pytest.raises(ValueError, match=match):
        model(x)
    with pytest.raises(ValueError, match=match):
        model.encode(x)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"activation": "tanh"}, r"activation: expected one of 'relu', 'elu', got 'tanh'"),
        ({"norm": "layer"}, r"norm: expected one of None, 'batch', 'group', got 'layer'"),
        ({"input_dropout": 1.5}, r"input_dropout: expected a number in \[0, 1\], got 1.5"),
        ({"channels": (8,)}, r"channels: expected at least 2 layers"),
        ({"channels": (8, 0, 4)}, r"channels\[1\]: expected an integer >= 1, got 0"),
    ],
)
def test_bad_options_raise(options: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ConvAutoEncoder(**options)  # type: ignore[arg-type]


def test_options_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        ConvAutoEncoder((8, 16, 32, 16))  # type: ignore[misc]
