"""Tests for transmri.models.conv: the CAE encoder and decoder as standalone modules."""

from __future__ import annotations

import pytest
import torch

from transmri.models import ConvDecoder, ConvEncoder


def test_encoder_alone_returns_the_code_only() -> None:
    encoder = ConvEncoder().eval()
    with torch.no_grad():
        code = encoder(torch.rand(2, 1, 24, 16, 32))
    assert isinstance(code, torch.Tensor)
    assert code.shape == (2, 16, 3, 2, 4)
    assert encoder.out_channels == 16 and encoder.pooling_steps == 3


def test_trace_returns_indices_and_pre_pool_sizes_earliest_first() -> None:
    trace = ConvEncoder().trace(torch.rand(1, 1, 21, 18, 17))
    assert trace.sizes == ((21, 18, 17), (10, 9, 8), (5, 4, 4))
    assert [tuple(i.shape) for i in trace.indices] == [
        (1, 8, 10, 9, 8),
        (1, 16, 5, 4, 4),
        (1, 32, 2, 2, 2),
    ]


def test_no_pass_state_is_kept_on_the_modules() -> None:
    encoder, decoder = ConvEncoder(), ConvDecoder()
    before = set(vars(encoder)) | set(vars(decoder))
    trace = encoder.trace(torch.rand(1, 1, 16, 16, 16))
    decoder(trace.code, sizes=trace.sizes, indices=trace.indices)
    assert set(vars(encoder)) | set(vars(decoder)) == before
    tensors = [v for m in (encoder, decoder) for v in vars(m).values() if torch.is_tensor(v)]
    assert tensors == []


def test_decoder_rebuilds_odd_sizes_with_either_upsampling() -> None:
    encoder = ConvEncoder().eval()
    x = torch.rand(1, 1, 19, 23, 17)
    with torch.no_grad():
        trace = encoder.trace(x)
        for decoder, indices in (
            (ConvDecoder(), trace.indices),
            (ConvDecoder(upsample="nearest"), None),
        ):
            assert decoder.eval()(trace.code, sizes=trace.sizes, indices=indices).shape == x.shape


def test_decoder_needs_indices_for_unpooling() -> None:
    trace = ConvEncoder().trace(torch.rand(1, 1, 16, 16, 16))
    with pytest.raises(
        ValueError, match=r"indices: expected 3 levels of pooling indices, got None"
    ):
        ConvDecoder()(trace.code, sizes=trace.sizes)
    with pytest.raises(ValueError, match=r"sizes: expected 3 levels, got 2"):
        ConvDecoder()(trace.code, sizes=trace.sizes[:2], indices=trace.indices)


def test_code_shape_checks_the_input_shape() -> None:
    encoder = ConvEncoder(channels=(8, 16))
    assert encoder.code_shape((5, 7, 9)) == (16, 2, 3, 4)
    with pytest.raises(ValueError, match=r"input size 1 along D is too small: at least 2 needed"):
        encoder.code_shape((1, 7, 9))
    with pytest.raises(ValueError, match=r"expected three sizes \(D, H, W\), got \(1, 7\)"):
        encoder.code_shape((1, 7))
