"""Tests for transmri.data.cache: keys, atomic writes, corruption, concurrency."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

import transmri.data.cache as cache_module
from tests.conftest import write_nifti
from transmri.data.cache import VolumeCache
from transmri.data.preprocess import PreprocessConfig, preprocess_scan
from transmri.data.table import ScanTable
from transmri.errors import ConfigError, DataFormatError

CONFIG = PreprocessConfig(target_shape=(16, 16, 16))


@pytest.fixture
def table(make_cohort: Callable[..., Path]) -> ScanTable:
    return ScanTable.from_csv(make_cohort(n=4, shape=(20, 20, 20)), mask_col="mask")


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_constructor_does_no_io(tmp_path: Path) -> None:
    VolumeCache(tmp_path / "cache", CONFIG)
    assert not (tmp_path / "cache").exists()


def test_constructor_validates() -> None:
    with pytest.raises(
        ConfigError, match="dtype: expected one of 'float16', 'float32', got 'int8'"
    ):
        VolumeCache("/tmp/c", CONFIG, dtype="int8")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="config: expected a PreprocessConfig, got dict"):
        VolumeCache("/tmp/c", {})  # type: ignore[arg-type]


def test_get_builds_then_maps_same_values(tmp_path: Path, table: ScanTable) -> None:
    cache = VolumeCache(tmp_path / "c", CONFIG)
    path, mask = table.paths[0], table.masks[0]
    first = cache.get(path, mask)
    assert isinstance(first, np.memmap) and not first.flags.writeable
    assert first.shape == (16, 16, 16) and first.dtype == np.float16
    expected = preprocess_scan(path, mask, CONFIG)
    np.testing.assert_allclose(first.astype(np.float32), expected, atol=1e-3)
    key = cache.key(path, mask)
    npy = cache.entry_path(key)
    assert npy == tmp_path / "c" / key[:2] / f"{key}.npy"
    meta = json.loads(npy.with_suffix(".json").read_text())
    assert meta["shape"] == [16, 16, 16] and meta["dtype"] == "float16"
    assert meta["source"] == path and meta["nbytes"] == npy.stat().st_size
    mtime = npy.stat().st_mtime_ns
    second = cache.get(path, mask)  # a hit: nothing rewritten
    assert npy.stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(first, second)
    assert (path, mask) in cache


def test_float32_cache_is_exact(tmp_path: Path, table: ScanTable) -> None:
    cache = VolumeCache(tmp_path / "c", CONFIG, dtype="float32")
    got = cache.get(table.paths[0], table.masks[0])
    np.testing.assert_array_equal(got, preprocess_scan(table.paths[0], table.masks[0], CONFIG))


def test_key_depends_on_content_config_dtype_and_mask(tmp_path: Path, table: ScanTable) -> None:
    path, mask = table.paths[0], table.masks[0]
    a = VolumeCache(tmp_path / "c", CONFIG)
    keys = {
        a.key(path, mask),
        a.key(path, None),
        VolumeCache(tmp_path / "c", CONFIG, dtype="float32").key(path, mask),
        VolumeCache(tmp_path / "c", PreprocessConfig(target_shape=(8, 8, 8))).key(path, mask),
        VolumeCache(tmp_path / "c", PreprocessConfig(target_shape=(16, 16, 16), mask=mask)).key(
            path, None
        ),
    }
    assert len(keys) == 5
    # same bytes elsewhere: same key (content-addressed); other root: same key
    copy = tmp_path / "copy.nii.gz"
    copy.write_bytes(Path(path).read_bytes())
    assert a.key(copy, mask) == a.key(path, mask)
    assert VolumeCache(tmp_path / "other", CONFIG).key(path, mask) == a.key(path, mask)


def test_key_changes_when_file_edited_and_hash_is_memoised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scan = write_nifti(tmp_path / "s.nii.gz", np.ones((16, 16, 16), np.float32))
    cache = VolumeCache(tmp_path / "c", CONFIG)
    calls: list[str] = []
    real = cache_module._sha256_file

    def counting(path: str) -> str:
        calls.append(str(path))
        return real(path)

    monkeypatch.setattr(cache_module, "_sha256_file", counting)
    cache_module._sha256_memo.cache_clear()
    k1 = cache.key(scan)
    k2 = cache.key(scan)
    assert k1 == k2 and len(calls) == 1  # second access hit the memo
    write_nifti(scan, np.full((16, 16, 16), 2.0, np.float32))
    os.utime(scan, ns=(1, 1))  # a different mtime, whatever the clock's resolution
    assert cache.key(scan) != k1 and len(calls) == 2


def test_key_missing_scan(tmp_path: Path) -> None:
    missing = tmp_path / "gone.nii.gz"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing)) + ": scan not found"):
        VolumeCache(tmp_path / "c", CONFIG).key(missing)


def test_key_directory_as_mask(tmp_path: Path) -> None:
    scan = write_nifti(tmp_path / "s.nii.gz", np.ones((16, 16, 16), np.float32))
    folder = tmp_path / "masks"
    folder.mkdir()
    with pytest.raises(IsADirectoryError, match=re.escape(str(folder)) + ": expected a mask"):
        VolumeCache(tmp_path / "c", CONFIG).key(scan, folder)


def test_truncated_npy_detected_and_rebuilt(tmp_path: Path, table: ScanTable) -> None:
    cache = VolumeCache(tmp_path / "c", CONFIG)
    good = np.array(cache.get(table.paths[0], table.masks[0]))
    npy = cache.entry_path(cache.key(table.paths[0], table.masks[0]))
    npy.write_bytes(npy.read_bytes()[:-100])
    again = cache.get(table.paths[0], table.masks[0])
    np.testing.assert_array_equal(again, good)
    assert json.loads(npy.with_suffix(".json").read_text())["nbytes"] == npy.stat().st_size


def test_get_tensor_matches_get(tmp_path: Path, table: ScanTable) -> None:
    for dtype in ("float16", "float32"):
        cache = VolumeCache(tmp_path / dtype, CONFIG, dtype=dtype)  # type: ignore[arg-type]
        tensor = cache.get_tensor(table.paths[0], table.masks[0])  # builds on a miss
        assert tensor.dtype == torch.float32 and tuple(tensor.shape) == (1, 16, 16, 16)
        mapped = cache.get(table.paths[0], table.masks[0])
        assert torch.equal(tensor[0], torch.from_numpy(np.array(mapped, dtype=np.float32)))
        tensor[0, 0, 0, 0] = 42.0  # a private copy: the cache is untouched
        assert float(cache.get(table.paths[0], table.masks[0])[0, 0, 0]) != 42.0


def test_truncation_detected_on_warm_instance(tmp_path: Path, table: ScanTable) -> None:
    # the entry layout is remembered after the first read; a later truncation
    # (e.g. by a crashed writer elsewhere) is still caught by the size check
    cache = VolumeCache(tmp_path / "c", CONFIG)
    good = cache.get_tensor(table.paths[0], table.masks[0])
    npy = cache.entry_path(cache.key(table.paths[0], table.masks[0]))
    npy.write_bytes(npy.read_bytes()[:-64])
    assert torch.equal(cache.get_tensor(table.paths[0], table.masks[0]), good)
    npy.write_bytes(npy.read_bytes()[:-64])
    np.testing.assert_array_equal(cache.get(table.paths[0], table.masks[0]), good[0].numpy())
    assert npy.stat().st_size == json.loads(npy.with_suffix(".json").read_text())["nbytes"]


def test_missing_sidecar_means_miss(tmp_path: Path, table: ScanTable) -> None:
    cache = VolumeCache(tmp_path / "c", CONFIG)
    cache.get(table.paths[0], table.masks[0])
    key = cache.key(table.paths[0], table.masks[0])
    cache.entry_path(key).with_suffix(".json").unlink()
    fresh = VolumeCache(tmp_path / "c", CONFIG)  # as another process sees it
    assert (table.paths[0], table.masks[0]) not in fresh
    fresh.get(table.paths[0], table.masks[0])
    assert cache.entry_path(key).with_suffix(".json").exists()


def _flip_byte(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[-10] ^= 0xFF  # same size, different content: only a checksum sees it
    path.write_bytes(bytes(raw))


def test_verify_finds_and_rebuilds_corrupt_entry(tmp_path: Path, table: ScanTable) -> None:
    cache = VolumeCache(tmp_path / "c", CONFIG)
    assert cache.fill(table, progress=False) == 4
    good = np.array(cache.get(table.paths[1], table.masks[1]))
    key = cache.key(table.paths[1], table.masks[1])
    _flip_byte(cache.entry_path(key))
    assert not np.array_equal(cache.get(table.paths[1], table.masks[1]), good)  # fast path
    assert cache.verify() == [key]
    np.testing.assert_array_equal(cache.get(table.paths[1], table.masks[1]), good)
    assert cache.verify() == []
    assert cache.verify(key) == []


def test_get_with_verify_rebuilds(tmp_path: Path, table: ScanTable) -> None:
    cache = VolumeCache(tmp_path / "c", CONFIG)
    good = np.array(cache.get(table.paths[0], table.masks[0]))
    _flip_byte(cache.entry_path(cache.key(table.paths[0], table.masks[0])))
    np.testing.assert_array_equal(cache.get(table.paths[0], table.masks[0], verify=True), good)


def test_verify_without_rebuild_removes(tmp_path: Path, table: ScanTable) -> None:
    cache = VolumeCache(tmp_path / "c", CONFIG)
    cache.get(table.paths[0], table.masks[0])
    key = cache.key(table.paths[0], table.masks[0])
    _flip_byte(cache.entry_path(key))
    assert cache.verify(key, rebuild=False) == [key]
    assert not cache.entry_path(key).exists()
    assert cache.keys() == []


def test_fill_counts_skips_and_shards(tmp_path: Path, table: ScanTable) -> None:
    cache = VolumeCache(tmp_path / "c", CONFIG)
    assert cache.fill(table, shard=(1, 2), progress=False) == 2
    present = [(p, m) in cache for p, m in zip(table.paths, table.masks)]
    assert present == [False, True, False, True]
    assert cache.fill(table, shard=(0, 2), progress=False) == 2
    assert cache.fill(table, progress=False) == 0  # all cached
    assert len(cache.keys()) == 4
    assert not [p for p in _files(tmp_path / "c") if p.name.endswith(".tmp")]


def test_fill_parallel_matches_serial(tmp_path: Path, table: ScanTable) -> None:
    serial = VolumeCache(tmp_path / "a", CONFIG)
    parallel = VolumeCache(tmp_path / "b", CONFIG)
    assert serial.fill(table, progress=False) == 4
    assert parallel.fill(table, n_jobs=2, progress=False) == 4
    for path, mask in zip(table.paths, table.masks):
        key = serial.key(path, mask)
        assert serial.entry_path(key).read_bytes() == parallel.entry_path(key).read_bytes()


def test_fill_progress_bar(
    tmp_path: Path, table: ScanTable, capsys: pytest.CaptureFixture[str]
) -> None:
    VolumeCache(tmp_path / "c", CONFIG).fill(table, progress=True)
    assert "caching volumes" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_jobs": 0}, r"n_jobs: expected an integer >= 1 or -1, got 0"),
        (
            {"shard": (2, 2)},
            r"shard: expected \(index, count\) with 0 <= index < count, got \(2, 2\)",
        ),
        ({"shard": (0,)}, r"shard: expected"),
        ({"shard": (-1, 3)}, r"shard: expected"),
    ],
)
def test_fill_rejects_bad_options(
    tmp_path: Path, table: ScanTable, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        VolumeCache(tmp_path / "c", CONFIG).fill(table, progress=False, **kwargs)  # type: ignore[arg-type]


def test_fill_rejects_non_table(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="table: expected a ScanTable, got list"):
        VolumeCache(tmp_path / "c", CONFIG).fill([], progress=False)  # type: ignore[arg-type]


def _table_with_bad_row(tmp_path: Path) -> tuple[ScanTable, Path]:
    write_nifti(tmp_path / "scans" / "good.nii.gz", np.random.default_rng(0).random((16, 16, 16)))
    bad = write_nifti(tmp_path / "scans" / "zero.nii.gz", np.zeros((16, 16, 16), np.float32))
    csv = tmp_path / "scans.csv"
    csv.write_text("path,subject\nscans/good.nii.gz,s1\nscans/zero.nii.gz,s2\n")
    return ScanTable.from_csv(csv, label_col=None), bad


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_failed_row_named_and_leaves_no_file(tmp_path: Path, n_jobs: int) -> None:
    table, bad = _table_with_bad_row(tmp_path)
    cache = VolumeCache(tmp_path / "c", CONFIG)
    pattern = re.escape(f"{table.source}, row 2: {bad}: the scan is all zeros") + r".*signal$"
    with pytest.raises(DataFormatError, match=pattern):
        cache.fill(table, n_jobs=n_jobs, progress=False)
    names = sorted(p.name for p in _files(tmp_path / "c"))
    # the good row was still cached, completely; the bad one left nothing
    good_key = cache.key(table.paths[0])
    assert names == [f"{good_key}.json", f"{good_key}.npy"]
    assert (str(bad), None) not in cache


def test_fill_reports_every_failure_count(tmp_path: Path) -> None:
    table, _ = _table_with_bad_row(tmp_path)
    zero = np.zeros((16, 16, 16), np.float32)
    extra = write_nifti(tmp_path / "scans" / "zero2.nii.gz", zero)
    frame = table.frame.copy()
    frame.loc[len(frame)] = {
        "path": str(extra),
        "subject": "s3",
        "label": None,
        "mask": None,
        "row": 3,
    }
    table = table.with_frame(frame)
    with pytest.raises(DataFormatError, match=r"row 2: .*all zeros.* \(2 of 3 rows failed\)$"):
        VolumeCache(tmp_path / "c", CONFIG).fill(table, progress=False)


def test_write_failure_leaves_no_temp_file(
    tmp_path: Path, table: ScanTable, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = VolumeCache(tmp_path / "c", CONFIG)

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache_module.os, "replace", broken_replace)
    with pytest.raises(OSError, match="No space left on device"):
        cache.get(table.paths[0], table.masks[0])
    assert [p for p in _files(tmp_path / "c")] == []


def test_float16_overflow_refused(tmp_path: Path) -> None:
    scan = write_nifti(tmp_path / "big.nii.gz", np.full((16, 16, 16), 1e6, np.float32))
    cache = VolumeCache(tmp_path / "c", PreprocessConfig(target_shape=None, scaling="none"))
    with pytest.raises(
        DataFormatError, match=re.escape(str(scan)) + r": preprocessed intensities reach 1e\+06"
    ):
        cache.get(scan)
    assert not (tmp_path / "c").exists() or _files(tmp_path / "c") == []


_FILL_SCRIPT = textwrap.dedent(
    """
    import sys
    from transmri.data.cache import VolumeCache
    from transmri.data.preprocess import PreprocessConfig
    from transmri.data.table import ScanTable
    table = ScanTable.from_csv(sys.argv[1], mask_col="mask")
    cache = VolumeCache(sys.argv[2], PreprocessConfig(target_shape=(16, 16, 16)))
    print(cache.fill(table, progress=False))
    """
)


def test_two_processes_fill_same_cache(tmp_path: Path, make_cohort: Callable[..., Path]) -> None:
    csv = make_cohort(n=8, shape=(24, 24, 24), folder="concurrent")
    root = tmp_path / "shared_cache"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _FILL_SCRIPT, str(csv), str(root)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    built = [int(out.strip().splitlines()[-1]) for out, _ in outs]
    assert 8 <= sum(built) <= 16  # each scan built by at least one of them
    table = ScanTable.from_csv(csv, mask_col="mask")
    cache = VolumeCache(root, CONFIG)
    assert len(cache.keys()) == 8
    assert cache.verify(rebuild=False) == []
    assert not [p for p in _files(root) if p.name.endswith(".tmp")]
    for path, mask in zip(table.paths, table.masks):
        np.testing.assert_allclose(
            cache.get(path, mask).astype(np.float32), preprocess_scan(path, mask, CONFIG), atol=1e-3
        )
