"""``transmri encoder import|info|list``, run in a subprocess as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def transmri(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TRANSMRI_CACHE": str(cache)}
    return subprocess.run(
        [sys.executable, "-m", "transmri", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def test_list_shows_the_zoo(tmp_path: Path) -> None:
    result = transmri("encoder", "list", cache=tmp_path)
    assert result.returncode == 0, result.stderr
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert names[:2] == ["deepbet", "deepbet-bbox"]
    assert {"medicalnet-resnet18", "sfcn-age", "sfcn-sex"} <= set(names)


def test_import_then_info(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from importlib import metadata

    try:
        metadata.distribution("deepbet")
    except metadata.PackageNotFoundError:
        pytest.skip("deepbet not installed (pip install 'transmri[deepbet]')")
    out = tmp_path / "enc"
    result = transmri("encoder", "import", "deepbet", "bbox", "--out", str(out), cache=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (out / "encoder.safetensors").is_file() and (out / "network.safetensors").is_file()
    info = transmri("encoder", "info", str(out), cache=tmp_path)
    assert info.returncode == 0, info.stderr
    summary = json.loads(info.stdout)
    assert summary["architecture"] == {"name": "deepbet_encoder"}
    assert summary["parameters"] == 2_076_016
    assert summary["provenance"]["zoo_name"] == "deepbet-bbox"
    assert summary["provenance"]["licence"] == "MIT"


def test_unknown_kind_and_missing_card_are_usage_errors(tmp_path: Path) -> None:
    bad = transmri("encoder", "import", "medicalnet", "--out", str(tmp_path / "x"), cache=tmp_path)
    assert bad.returncode == 2
    assert "unknown KIND 'medicalnet'" in bad.stderr
    assert not (tmp_path / "x").exists()
    missing = transmri("encoder", "info", str(tmp_path / "nothing"), cache=tmp_path)
    assert missing.returncode == 2
    assert "nothing" in missing.stderr
