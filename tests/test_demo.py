"""``transmri demo --quick`` end to end, and its report as headless Chromium shows it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.evaluation._browser import (
    console_messages,
    data_uri_images,
    ensure_chromium,
    external_references,
    render_page,
)
from tests.test_cli import transmri
from transmri.demo import DemoConfig
from transmri.errors import ConfigError


def test_demo_config_options() -> None:
    quick = DemoConfig.from_options(quick=True, epochs=3)
    assert (quick.source_subjects, quick.resolution, quick.epochs) == (40, 8.0, 3)
    assert DemoConfig.from_options().source_subjects == DemoConfig().source_subjects
    with pytest.raises(ConfigError, match=r"resolution: expected a voxel size in \[4, 16\] mm"):
        DemoConfig(resolution=2.0)
    with pytest.raises(ConfigError, match="source_subjects: expected an integer >= 20"):
        DemoConfig(source_subjects=5)


def test_demo_quick_end_to_end_in_chromium(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    done = transmri("demo", "--quick", "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    report = out / "report.html"
    assert f"Report: {report}" in done.stdout and "SYNTHETIC" in done.stdout
    run = json.loads((out / "run.json").read_text())
    assert run["synthetic"] is True
    cohorts = json.loads((out / "data" / "target" / "cohort.json").read_text())
    assert cohorts["config"]["contrast"] == "T2" and cohorts["config"]["condition"] == "second"

    import pandas as pd

    comparison = pd.read_csv(out / "comparison.csv")
    expected = {"finetune", "scratch", "linear_probe", "regional_probe", "regional_random", "ridge"}
    assert set(comparison["method"]) == expected
    assert comparison["test_subjects_hash"].nunique() == 1

    # A second demo with other settings in the same folder is refused...
    again = transmri("demo", "--quick", "--seed", "1", "--out", str(out))
    assert again.returncode == 2 and "--overwrite" in again.stderr

    path, reason = ensure_chromium(timeout=300)
    if path is None:
        pytest.skip(f"headless Chromium unavailable: {reason}")
    page = render_page(path, report, window_size=(1200, 1600))
    assert console_messages(page.log) == []
    assert re.search(r'<section id="comparison">', page.dom)
    assert "No comparison.csv" not in page.dom
    assert "Synthetic data." in page.dom
    images = data_uri_images(page.dom)
    assert len(images) >= 5
    assert all(png is not None and png.startswith(b"\x89PNG") for _, png in images)
    assert external_references(page.dom) == []


def test_two_demo_runs_with_one_seed_give_identical_comparison_rows(tmp_path: Path) -> None:
    """Same seed, same thread count: bit-identical numbers, whatever the folder.

    (A different thread count sums in another order; run.json records it.)
    """
    import pandas as pd

    frames = []
    for name in ("first", "second"):
        done = transmri("demo", "--quick", "--out", str(tmp_path / name))
        assert done.returncode == 0, done.stderr[-3000:]
        frames.append(pd.read_csv(tmp_path / name / "comparison.csv"))
        run = json.loads((tmp_path / name / "run.json").read_text())
        assert run["environment"]["torch_threads"] == 1  # the helper sets OMP_NUM_THREADS=1
        assert run["steps"]["pretrain"]["torch_threads"] == 1
    # Every column but the wall-clock time must agree exactly.
    first, second = (f.drop(columns=["seconds"]) for f in frames)
    pd.testing.assert_frame_equal(first, second, check_exact=True)
    assert len(first) == 6 and first["auc"].notna().all()
    weights = [tmp_path / n / "pretrain" / "encoder.safetensors" for n in ("first", "second")]
    assert weights[0].read_bytes() == weights[1].read_bytes()
