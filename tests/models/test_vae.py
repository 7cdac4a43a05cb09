"""Tests for transmri.models.vae: the variational autoencoder and its KL term."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from transmri.models import ConvAutoEncoder, VariationalAutoEncoder, kl_divergence

PAPER_SHAPES = [(108, 128, 108), (105, 127, 105), (105, 126, 105), (77, 92, 77), (32, 32, 32)]


@pytest.mark.parametrize("shape", PAPER_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_output_shapes(shape: tuple[int, int, int]) -> None:
    model = VariationalAutoEncoder().eval()
    with torch.no_grad():
        out = model(torch.rand(1, 1, *shape))
    assert set(out) == {"reconstruction", "mu", "logvar", "code"}
    assert out["reconstruction"].shape == (1, 1, *shape)
    code = (1, *model.code_shape(shape))
    assert out["mu"].shape == out["logvar"].shape == out["code"].shape == code


def test_sampling_in_training_mean_in_eval() -> None:
    torch.manual_seed(0)
    model = VariationalAutoEncoder(latent_channels=4)
    x = torch.rand(2, 1, 16, 16, 16)
    a, b = model(x), model(x)
    assert torch.equal(a["mu"], b["mu"])
    assert not torch.equal(a["reconstruction"], b["reconstruction"])
    model.eval()
    with torch.no_grad():
        c, d = model(x), model(x)
        assert torch.equal(c["reconstruction"], d["reconstruction"])
        assert torch.equal(c["code"], model.encode(x))


def test_kl_is_finite_positive_and_zero_for_the_prior() -> None:
    model = VariationalAutoEncoder()
    out = model(torch.rand(2, 1, 16, 16, 16))
    kl = kl_divergence(out["mu"], out["logvar"])
    assert kl.dim() == 0 and torch.isfinite(kl) and kl > 0
    assert kl_divergence(torch.zeros(3, 5), torch.zeros(3, 5)).item() == 0.0
    # mean over the batch, sum over the code: mu = 1 everywhere -> 0.5 per element
    assert kl_divergence(torch.ones(3, 5), torch.zeros(3, 5)).item() == pytest.approx(2.5)
    huge = kl_divergence(torch.zeros(1, 2), torch.full((1, 2), 1e4))
    assert torch.isfinite(huge)


def test_kl_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match=r"same shape, got \(2, 3\) and \(2, 4\)"):
        kl_divergence(torch.zeros(2, 3), torch.zeros(2, 4))


def test_gradient_reaches_every_parameter() -> None:
    model = VariationalAutoEncoder()
    x = torch.rand(2, 1, 20, 24, 20)
    out = model(x)
    loss = F.mse_loss(out["reconstruction"], x) + 1e-3 * kl_divergence(out["mu"], out["logvar"])
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_encoder_matches_the_cae_encoder_plus_heads() -> None:
    vae, cae = VariationalAutoEncoder(), ConvAutoEncoder()
    assert vae.encoder.body.state_dict().keys() == cae.encoder.state_dict().keys()
    heads = 2 * (16 * 16 + 16)  # two 1x1x1 convs 16 -> 16
    assert vae.encoder.num_parameters() == cae.encoder.num_parameters() + heads
    assert vae.num_parameters() == cae.num_parameters() + heads


def test_bad_input_raises() -> None:
    with pytest.raises(ValueError, match=r"expected input \(N, 1, D, H, W\)"):
        VariationalAutoEncoder()(torch.rand(16, 16, 16, 16))
