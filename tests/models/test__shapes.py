"""Tests for transmri.models._shapes: input checks and size arithmetic."""

from __future__ import annotations

import pytest
import torch

from transmri.models._shapes import check_input, level_sizes


def test_level_sizes_floor_and_custom_rule() -> None:
    assert level_sizes((105, 127, 105), 3) == [
        (105, 127, 105),
        (52, 63, 52),
        (26, 31, 26),
        (13, 15, 13),
    ]
    assert level_sizes((5,), 2, rule=lambda n: -(-n // 2)) == [(5,), (3,), (2,)]


def test_check_input_messages() -> None:
    check_input(torch.zeros(1, 1, 8, 8, 8), steps=3, where="M")
    with pytest.raises(ValueError, match=r"^M: expected input \(N, 1, D, H, W\).*got \(8, 8, 8\)$"):
        check_input(torch.zeros(8, 8, 8), steps=3, where="M")
    with pytest.raises(ValueError, match=r"x.unsqueeze\(1\)"):
        check_input(torch.zeros(2, 8, 8, 8), steps=3, where="M")
    with pytest.raises(ValueError, match=r"input size 7 along D is too small: at least 8 needed"):
        check_input(torch.zeros(1, 1, 7, 8, 8), steps=3, where="M")
    with pytest.raises(TypeError, match=r"expected a torch.Tensor, got ndarray"):
        import numpy as np

        check_input(np.zeros((1, 1, 8, 8, 8)), steps=3, where="M")
