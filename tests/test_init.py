"""Tests of the top-level package: lazy public names, all resolvable."""

from __future__ import annotations

import subprocess
import sys

import pytest

import transmri


@pytest.mark.parametrize("name", transmri.__all__)
def test_every_public_name_resolves(name: str) -> None:
    assert getattr(transmri, name) is not None


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'Lerner'"):
        _ = transmri.Lerner  # type: ignore[attr-defined]


def test_import_does_not_load_torch() -> None:
    code = "import sys, transmri; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_all_lists_exactly_the_lazy_names_and_errors() -> None:
    eager = {n for n in transmri.__all__ if n.endswith("Error")} | {"__version__"}
    assert set(transmri.__all__) - eager == set(transmri._LAZY)
