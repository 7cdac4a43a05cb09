"""Concurrency: two processes writing the same cache, two runs into one folder."""

from __future__ import annotations

import json
import re
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from tests.reliability import _jobs
from tests.reliability._helpers import start, temp_files, tiny_cohort
from transmri.data.cache import VolumeCache
from transmri.data.preprocess import PreprocessConfig, preprocess_scan
from transmri.data.table import ScanTable
from transmri.errors import OutputExistsError
from transmri.training.checkpoint import load_checkpoint

CONFIG = PreprocessConfig(target_shape=(8, 8, 8))

# Both children import everything first, then wait for the same "go" file, so
# that their fills really overlap instead of one finishing during the other's imports.
FILL_AFTER_GO = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import monai.transforms  # noqa: F401  (the slow import, before the start line)
    from transmri.data.cache import VolumeCache
    from transmri.data.preprocess import PreprocessConfig
    from transmri.data.table import ScanTable
    table = ScanTable.from_csv(sys.argv[1], label_col=None)
    cache = VolumeCache(sys.argv[2], PreprocessConfig(target_shape=(8, 8, 8)))
    Path(sys.argv[4]).touch()
    while not Path(sys.argv[3]).exists():
        time.sleep(0.01)
    t0 = time.time()
    built = cache.fill(table, progress=False)
    print(built, t0, time.time())
    """
)


@pytest.mark.slow
def test_two_processes_fill_same_cache_many_scans(tmp_path: Path) -> None:
    n = 300
    csv = tiny_cohort(tmp_path / "cohort", n)
    root = tmp_path / "cache"
    go = tmp_path / "go"
    ready = [tmp_path / "ready0", tmp_path / "ready1"]
    procs = [start(FILL_AFTER_GO, csv, root, go, ready[i]) for i in range(2)]
    deadline = time.monotonic() + 180
    while not all(r.exists() for r in ready):
        assert all(p.poll() is None for p in procs), [p.communicate()[1][-2000:] for p in procs]
        assert time.monotonic() < deadline, "children never got ready"
        time.sleep(0.02)
    go.touch()
    outs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outs]
    results = [out.split() for out, _ in outs]
    built = [int(r[0]) for r in results]
    # the two fills overlapped in time (otherwise this test proves nothing)
    (s0, e0), (s1, e1) = [(float(r[1]), float(r[2])) for r in results]
    assert s0 < e1 and s1 < e0
    # every scan was built by at least one of them; none was lost
    assert n <= sum(built) <= 2 * n

    cache = VolumeCache(root, CONFIG)
    table = ScanTable.from_csv(csv, label_col=None)
    expected_keys = sorted(cache.key(p) for p in table.paths)
    assert cache.keys() == expected_keys  # one entry per scan, nothing else
    assert sorted(p.stem for p in root.glob("??/*.npy")) == expected_keys
    assert cache.verify(rebuild=False) == []  # no torn file: every sha256 matches
    assert temp_files(root) == []
    for path in table.paths[::15]:
        np.testing.assert_allclose(
            cache.get(path).astype(np.float32), preprocess_scan(path, None, CONFIG), atol=2e-3
        )


# ---------------------------------------------------------- run folders
JOB = (
    "import sys, runpy; sys.argv = ['_jobs', *sys.argv[1:]]; "
    "runpy.run_module('tests.reliability._jobs', run_name='__main__')"
)


def test_second_run_into_same_folder_refused(tmp_path: Path) -> None:
    csv = tiny_cohort(tmp_path / "cohort", 16, shape=_jobs.SHAPE)
    run_dir = tmp_path / "run"
    first = _jobs.make_learner(csv, tmp_path / "cache", run_dir, augment=None)
    first.fit(1, 3e-3)
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    other = _jobs.make_learner(csv, tmp_path / "cache", run_dir, augment=None, channels=(4, 6, 8))
    with pytest.raises(
        OutputExistsError,
        match=re.escape(str(run_dir)) + r": holds a different run \(model: .*choose another folder",
    ):
        other.fit(1, 3e-3)
    after = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    assert after == before  # the first run's files are untouched


@pytest.mark.slow
def test_two_runs_started_at_once_into_one_folder_one_refused(tmp_path: Path) -> None:
    csv = tiny_cohort(tmp_path / "cohort", 16, shape=_jobs.SHAPE)
    cache = tmp_path / "cache"
    _jobs.make_learner(csv, cache, tmp_path / "unused", augment=None)  # fill the cache once
    run_dir = tmp_path / "run"
    go = tmp_path / "go"
    ready = [tmp_path / "ready8", tmp_path / "ready6"]
    procs = [
        start(JOB, "race", csv, cache, run_dir, str(width), go, flag)
        for width, flag in zip((8, 6), ready, strict=True)
    ]
    deadline = time.monotonic() + 180
    while not all(r.exists() for r in ready):
        assert all(p.poll() is None for p in procs), [p.communicate()[1][-2000:] for p in procs]
        assert time.monotonic() < deadline, "children never got ready"
        time.sleep(0.02)
    go.touch()
    outs = [p.communicate(timeout=240) for p in procs]
    codes = [p.returncode for p in procs]
    assert sorted(codes) == [0, 1], [err[-2000:] for _, err in outs]
    winner = codes.index(0)
    loser_err = outs[1 - winner][1]
    assert "OutputExistsError" in loser_err
    assert f"{run_dir}: holds a different run" in loser_err
    # the folder holds the winner's run only, complete and loadable
    manifest = json.loads((run_dir / "run.json").read_text())
    width = (8, 6)[winner]
    assert manifest["identity"]["model"]["encoder"]["channels"][1] == width
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["epoch"] == 1
