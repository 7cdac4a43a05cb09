"""The bad-input matrix: every public entry point against a catalogue of bad inputs.

Each case either fails with a clear error (a transmri error or a built-in
``OSError`` subclass, never an exception type from inside a library), whose
message names the file, row or subject, and leaves no half-written output;
or it works (a documented repair: BOM and ``;`` in CSVs, spaces and
non-ASCII characters in paths, symlinks).

Set ``TRANSMRI_CATALOGUE=<file>`` to write every case's real outcome as
tab-separated lines (used for the table in ``docs/RELIABILITY.md``).
"""

from __future__ import annotations

import errno
import gzip
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from tests.reliability._helpers import temp_files, write_volume
from transmri.data import DataBunch, ScanTable, VolumeCache, load_mask, load_nifti
from transmri.data.preprocess import PreprocessConfig, preprocess_scan
from transmri.datasets import from_bids, get_ixi
from transmri.errors import DataFormatError, DataLeakageError, TransmriError

CONFIG = PreprocessConfig(target_shape=(8, 8, 8))
SHAPE = (8, 8, 8)


@dataclass
class Case:
    """What one entry point does with one bad input."""

    call: Callable[[], Any]
    raises: type[BaseException] | None = None
    match: str = ""
    clean: list[Path] = field(default_factory=list)  # folders that must hold no file after
    check: Callable[[Any], None] | None = None  # for inputs that must work
    cleanup: Callable[[], None] | None = None


def _good(rng: np.random.Generator | None = None) -> np.ndarray:
    rng = rng or np.random.default_rng(0)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, s) for s in SHAPE], indexing="ij"))
    return ((grid**2).sum(0) < 0.9) * (50 + 10 * rng.random(SHAPE)).astype(np.float32)


# --------------------------------------------------------------- bad scans
def _scan(kind: str, d: Path) -> tuple[Path, type[BaseException], str]:
    """Write a bad scan of ``kind`` in ``d``; return it, the error type and message tail."""
    if kind == "missing file":
        return d / "absent.nii.gz", FileNotFoundError, "scan not found"
    if kind == "directory as file":
        p = d / "folder.nii.gz"
        p.mkdir(parents=True)
        return p, IsADirectoryError, "expected a scan, found a directory"
    d.mkdir(parents=True, exist_ok=True)
    if kind == "zero-byte file":
        p = d / "empty.nii.gz"
        p.touch()
        return p, DataFormatError, r"empty file \(0 bytes\); expected a NIfTI scan"
    if kind == "not a NIfTI":
        p = d / "notes.nii"
        p.write_text("subject,age\ns1,71\n" * 30)
        return p, DataFormatError, r"cannot read as a NIfTI scan \(\.nii or \.nii\.gz\)"
    if kind == "truncated gzip":
        p = write_volume(d / "cut.nii.gz", np.random.default_rng(0).random((16, 16, 16)))
        p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
        return p, DataFormatError, r"cannot read the voxel data \(truncated or corrupt file\)"
    if kind == "4D image":
        p = write_volume(d / "fmri.nii.gz", np.random.default_rng(0).random((8, 8, 8, 2)))
        return p, DataFormatError, r"expected a 3D volume, got shape \(8, 8, 8, 2\)"
    if kind == "2D image":
        p = write_volume(d / "slice.nii.gz", np.random.default_rng(0).random((8, 8)))
        return p, DataFormatError, r"expected a 3D volume, got shape \(8, 8\)"
    if kind == "NaN voxels":
        vol = _good()
        vol[2, 2, 2:5] = np.nan
        p = write_volume(d / "nan.nii.gz", vol)
        return p, DataFormatError, r"3 of 512 voxels are NaN or Inf in this scan"
    if kind == "all-zero image":
        p = write_volume(d / "zero.nii.gz", np.zeros(SHAPE, np.float32))
        return p, DataFormatError, r"the scan is all zeros \(shape \(8, 8, 8\)\)"
    if kind == "2 GB header claim in a tiny file":
        p = write_volume(d / "huge.nii", _good())
        header = bytearray(p.read_bytes())
        dims = np.frombuffer(bytes(header[40:56]), dtype="<i2").copy()
        dims[1:4] = (1024, 1024, 512)  # float32: 2 GiB of voxels
        header[40:56] = dims.tobytes()
        p.write_bytes(bytes(header))
        return p, DataFormatError, r"header claims shape \(1024, 1024, 512\)"
    raise AssertionError(kind)


SCAN_KINDS = [
    "missing file",
    "directory as file",
    "zero-byte file",
    "not a NIfTI",
    "truncated gzip",
    "4D image",
    "2D image",
    "NaN voxels",
    "all-zero image",
    "2 GB header claim in a tiny file",
]


def _table(paths: list[Path], *, masks: list[Path | None] | None = None) -> ScanTable:
    frame = pd.DataFrame(
        {
            "path": [str(p) for p in paths],
            "subject": [f"s{i}" for i in range(len(paths))],
            "label": ["CN"] * len(paths),
            "mask": [None if m is None else str(m) for m in (masks or [None] * len(paths))],
        }
    )
    return ScanTable.from_frame(frame, mask_col="mask", check_files=False, source="scans.csv")


def _scan_entry(entry: str, kind: str, tmp: Path) -> Case:
    p, exc, tail = _scan(kind, tmp / "in")
    head = re.escape(str(p)) + ": "
    cache_dir = tmp / "cache"
    if entry == "load_nifti":
        return Case(lambda: load_nifti(p), exc, head + tail)
    if entry == "preprocess_scan":
        return Case(lambda: preprocess_scan(p, None, CONFIG), exc, head + tail)
    if entry == "VolumeCache.get":
        return Case(lambda: VolumeCache(cache_dir, CONFIG).get(p), exc, head + tail, [cache_dir])
    good = write_volume(tmp / "in" / "good.nii.gz", _good())
    table = _table([good, p])
    row = re.escape("scans.csv, row 2: ") + head + tail
    if entry == "VolumeCache.fill":
        cache = VolumeCache(cache_dir, CONFIG)

        def fill() -> None:
            cache.fill(table, progress=False)

        def only_good_entry(_: Any) -> None:
            # the good row is cached completely; the bad row left nothing
            assert cache.keys() == [cache.key(good)]

        return Case(fill, DataFormatError, row, check=only_good_entry)
    if entry == "DataBunch.prepare":
        data = DataBunch.from_splits(train=table, preprocessing=CONFIG, cache_dir=cache_dir)
        return Case(lambda: data.prepare(progress=False), DataFormatError, row)
    raise AssertionError(entry)


# --------------------------------------------------------------- bad masks
def _mask_case(entry: str, kind: str, tmp: Path) -> Case:
    scan = write_volume(tmp / "in" / "scan.nii.gz", _good())
    if kind == "empty mask":
        mask = write_volume(tmp / "in" / "mask.nii.gz", np.zeros(SHAPE, np.uint8))
        tail = r"the mask is empty \(no voxel > 0, shape \(8, 8, 8\)\)"
    else:  # mask grid differs
        mask = write_volume(tmp / "in" / "mask.nii.gz", np.ones((8, 8, 6), np.uint8))
        tail = r"mask grid differs: image .*shape \(8, 8, 8\).* vs mask shape \(8, 8, 6\)"
    head = re.escape(str(mask)) + ": "
    if entry == "load_mask":
        return Case(lambda: load_mask(mask, like=scan), DataFormatError, head + tail)
    if entry == "preprocess_scan":
        return Case(lambda: preprocess_scan(scan, mask, CONFIG), DataFormatError, head + tail)
    cache_dir = tmp / "cache"
    table = _table([scan], masks=[mask])
    return Case(
        lambda: VolumeCache(cache_dir, CONFIG).fill(table, progress=False),
        DataFormatError,
        re.escape("scans.csv, row 1: ") + head + tail,
        [cache_dir],
    )


# -------------------------------------------------------------- bad tables
def _cohort(d: Path, n: int, labels: Sequence[str | None] | None = None) -> Path:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        write_volume(d / "scans" / f"s{i}.nii.gz", _good(rng))
        label = labels[i] if labels is not None else ("CN", "AD")[i % 2]
        rows.append({"path": f"scans/s{i}.nii.gz", "subject": f"sub-{i:02d}", "label": label})
    csv = d / "scans.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    return csv


def _table_case(kind: str, tmp: Path) -> Case:
    d = tmp / "in"
    if kind == "empty CSV":
        d.mkdir(parents=True)
        csv = d / "scans.csv"
        csv.write_text("")
        return Case(
            lambda: ScanTable.from_csv(csv), DataFormatError, _q(csv) + ": the file is empty"
        )
    if kind == "CSV with a header only":
        d.mkdir(parents=True)
        csv = d / "scans.csv"
        csv.write_text("path,subject,label\n")
        return Case(
            lambda: ScanTable.from_csv(csv), DataFormatError, _q(csv) + ": the table has no rows"
        )
    if kind == "CSV is a directory":
        d.mkdir(parents=True)
        return Case(
            lambda: ScanTable.from_csv(d),
            DataFormatError,
            _q(d) + ": expected a CSV file, found a directory",
        )
    if kind == "CSV missing":
        csv = d / "nope.csv"
        return Case(
            lambda: ScanTable.from_csv(csv), FileNotFoundError, _q(csv) + ": scan table not found"
        )
    if kind == "CSV row names a missing scan":
        csv = _cohort(d, 2)
        (d / "scans" / "s1.nii.gz").unlink()
        return Case(
            lambda: ScanTable.from_csv(csv),
            DataFormatError,
            _q(csv) + r", row 2, column 'path': file not found: .*s1\.nii\.gz",
        )
    if kind == "duplicate rows":
        csv = _cohort(d, 3)
        csv.write_text(csv.read_text() + "scans/s1.nii.gz,sub-01,AD\n")
        return Case(
            lambda: ScanTable.from_csv(csv),
            DataFormatError,
            _q(csv)
            + r", row 4, column 'path': duplicate scan .*s1\.nii\.gz \(first listed in row 2\)",
        )
    if kind == "unknown label":
        csv = _cohort(d, 8, ["CN", "AD", "CN", "AD", "CN", "Dementa", "CN", "AD"])
        table = ScanTable.from_csv(csv)
        return Case(
            lambda: DataBunch(table, CONFIG, classes=["CN", "AD"]),
            DataFormatError,
            _q(csv) + r", row 6, column 'label': unknown label 'Dementa'; expected one of",
        )
    if kind == "missing label":
        csv = _cohort(d, 8, ["CN", "AD", "CN", None, "CN", "AD", "CN", "AD"])
        table = ScanTable.from_csv(csv)
        return Case(
            lambda: DataBunch(table, CONFIG),
            DataFormatError,
            _q(csv) + r", row 4, column 'label': missing label for .*s3\.nii\.gz",
        )
    if kind == "a class with too few subjects":
        csv = _cohort(d, 8, ["CN"] * 7 + ["AD"])
        table = ScanTable.from_csv(csv)
        return Case(lambda: DataBunch(table, CONFIG), DataFormatError, r"class 'AD'.*1 subject")
    if kind == "subject in two splits":
        csv = _cohort(d, 6)
        table = ScanTable.from_csv(csv)
        frame = table.frame.copy()
        frame.loc[4, "subject"] = "sub-01"
        table = table.with_frame(frame)
        return Case(
            lambda: DataBunch.from_splits(
                train=table.subset([0, 1, 2, 3]), test=table.subset([4, 5]), preprocessing=CONFIG
            ),
            DataLeakageError,
            r"sub-01",
        )
    raise AssertionError(kind)


def _q(p: Path) -> str:
    return re.escape(str(p))


# --------------------------------------------------- inputs that must work
def _works_case(kind: str, tmp: Path) -> Case:
    if kind == "CSV with BOM and semicolons":
        d = tmp / "in"
        csv = _cohort(d, 4)
        text = csv.read_text().replace(",", ";")
        csv.write_bytes("\ufeff".encode() + text.encode("utf-8"))

        def check(table: ScanTable) -> None:
            assert list(table.frame.columns[:3]) == ["path", "subject", "label"]
            assert table.subjects == ["sub-00", "sub-01", "sub-02", "sub-03"]

        return Case(lambda: ScanTable.from_csv(csv), check=check)
    if kind == "paths with spaces and non-ASCII":
        d = tmp / "in" / "Études cliniques" / "Zürich 2019"
        csv = _cohort(d, 4)
        cache_dir = tmp / "cache dir é"

        def run() -> tuple[ScanTable, int, np.ndarray]:
            table = ScanTable.from_csv(csv)
            cache = VolumeCache(cache_dir, CONFIG)
            built = cache.fill(table, progress=False)
            return table, built, np.asarray(cache.get(table.paths[0]))

        def check_paths(result: tuple[ScanTable, int, np.ndarray]) -> None:
            table, built, volume = result
            assert built == 4
            assert "Zürich 2019" in table.paths[0]
            assert volume.shape == SHAPE

        return Case(run, check=check_paths)
    if kind == "symlinks":
        real = _cohort(tmp / "real", 4)
        linked = tmp / "linked"
        linked.mkdir()
        (linked / "scans").mkdir()
        for scan in (tmp / "real" / "scans").iterdir():
            (linked / "scans" / scan.name).symlink_to(scan)
        (linked / "scans.csv").symlink_to(real)
        cache_dir = tmp / "cache"

        def run_links() -> tuple[int, int]:
            table = ScanTable.from_csv(linked / "scans.csv", root=linked)
            cache = VolumeCache(cache_dir, CONFIG)
            built = cache.fill(table, progress=False)
            # same content through the link and the target: the same cache entry
            again = cache.fill(ScanTable.from_csv(real), progress=False)
            return built, again

        def check_links(result: tuple[int, int]) -> None:
            assert result == (4, 0)

        return Case(run_links, check=check_links)
    raise AssertionError(kind)


# ------------------------------------------------------------ adapters
def _adapter_case(kind: str, tmp: Path) -> Case:
    if kind == "get_ixi: missing folder":
        d = tmp / "ixi"
        return Case(lambda: get_ixi(d), FileNotFoundError, _q(d) + ": IXI folder not found")
    if kind == "get_ixi: folder without IXI scans":
        d = tmp / "ixi"
        write_volume(d / "t1" / "scan.nii.gz", _good())
        return Case(lambda: get_ixi(d), DataFormatError, _q(d) + ": expected IXI T1 scans named")
    if kind == "from_bids: not a BIDS folder":
        d = tmp / "bids"
        write_volume(d / "scan.nii.gz", _good())
        return Case(
            lambda: from_bids(d, label_col="dx"),
            DataFormatError,
            _q(d) + r": expected a BIDS dataset with participants\.tsv",
        )
    if kind == "from_bids: file instead of folder":
        d = tmp / "bids.tsv"
        d.write_text("x")
        return Case(
            lambda: from_bids(d, label_col="dx"),
            NotADirectoryError,
            _q(d) + ": expected a BIDS dataset folder, found a file",
        )
    raise AssertionError(kind)


# ------------------------------------------------------------ training
def _trained_run(tmp: Path) -> Path:
    """A finished run folder with a saved encoder and model."""
    csv = _cohort(tmp / "in", 8)
    table = ScanTable.from_csv(csv)
    data = DataBunch(
        table, PreprocessConfig(target_shape=(16, 16, 16)), val_size=0.25, test_size=0.25, seed=0
    )
    learner = _learner(data, tmp / "run")
    learner.fit(1, 1e-3)
    learner.save_encoder()
    learner.save("model")
    return tmp / "run"


def _learner(data: DataBunch, path: Path) -> Any:
    import torch

    from transmri.models import ConvEncoder, EncoderClassifier
    from transmri.training import Learner

    torch.manual_seed(0)
    model = EncoderClassifier(ConvEncoder(channels=(4, 8, 8)), data.num_classes)
    return Learner(data, model, path, model_type="classifier", batch_size=4, progress=False)


def _training_case(kind: str, tmp: Path) -> Case:
    from transmri.errors import CheckpointError, IntegrityError
    from transmri.training import load_encoder
    from transmri.training.checkpoint import load_checkpoint

    if kind == "load_encoder: folder without an encoder":
        d = tmp / "empty_run"
        d.mkdir()
        return Case(
            lambda: load_encoder(d),
            FileNotFoundError,
            _q(d / "encoder.json") + ": encoder card not found",
        )
    if kind == "load_encoder: zero-byte card":
        d = tmp / "run"
        d.mkdir()
        (d / "encoder.json").touch()
        return Case(
            lambda: load_encoder(d),
            DataFormatError,
            _q(d / "encoder.json") + ": expected a readable encoder card",
        )
    if kind == "load_encoder: card is not JSON":
        d = tmp / "run"
        d.mkdir()
        (d / "encoder.json").write_bytes(b"\x89PNG\r\n")
        return Case(
            lambda: load_encoder(d),
            DataFormatError,
            _q(d / "encoder.json") + ": expected a readable encoder card",
        )
    if kind == "load_encoder: weights file missing":
        run = _trained_run(tmp)
        (run / "encoder.safetensors").unlink()
        return Case(
            lambda: load_encoder(run),
            FileNotFoundError,
            _q(run / "encoder.safetensors")
            + ": encoder weights named by .*encoder\\.json not found",
        )
    if kind == "load_encoder: weights file is a directory":
        run = _trained_run(tmp)
        (run / "encoder.safetensors").unlink()
        (run / "encoder.safetensors").mkdir()
        return Case(
            lambda: load_encoder(run),
            FileNotFoundError,
            _q(run / "encoder.safetensors") + ": encoder weights named by",
        )
    if kind == "load_checkpoint: zero-byte file":
        p = tmp / "last.pt"
        p.touch()
        return Case(
            lambda: load_checkpoint(p),
            IntegrityError,
            _q(p) + ": no checksum file last\\.pt\\.sha256",
        )
    if kind == "load_checkpoint: a directory":
        p = tmp / "last.pt"
        p.mkdir()
        return Case(lambda: load_checkpoint(p), FileNotFoundError, _q(p) + ": checkpoint not found")
    if kind == "Learner.load: no saved model":
        run = _trained_run(tmp)
        learner = _learner(DataBunch.load(run / "data.json"), run)
        return Case(
            lambda: learner.load("other"),
            FileNotFoundError,
            _q(run / "models" / "other.json") + ": model card not found",
        )
    if kind == "Learner.fit(resume=True): no checkpoint":
        csv = _cohort(tmp / "in", 8)
        data = DataBunch(
            ScanTable.from_csv(csv),
            PreprocessConfig(target_shape=(16, 16, 16)),
            val_size=0.25,
            test_size=0.25,
            seed=0,
        )
        learner = _learner(data, tmp / "run")
        return Case(
            lambda: learner.fit(2, 1e-3, resume=True),
            FileNotFoundError,
            _q(tmp / "run" / "checkpoints" / "last.pt") + ": checkpoint not found",
        )
    if kind == "Learner.load: weights of another architecture":
        run = _trained_run(tmp)
        import torch

        from transmri.models import ConvEncoder, EncoderClassifier
        from transmri.training import Learner

        data = DataBunch.load(run / "data.json")
        torch.manual_seed(0)
        other = Learner(
            data,
            EncoderClassifier(ConvEncoder(channels=(4, 4)), 2),
            tmp / "run2",
            model_type="classifier",
            progress=False,
        )
        shutil.copytree(run / "models", tmp / "run2" / "models")
        return Case(
            lambda: other.load("model"),
            CheckpointError,
            _q(run.parent / "run2" / "models" / "model.json")
            + ": the checkpoint was made for another architecture",
        )
    raise AssertionError(kind)


TRAINING_KINDS = [
    "load_encoder: folder without an encoder",
    "load_encoder: zero-byte card",
    "load_encoder: card is not JSON",
    "load_encoder: weights file missing",
    "load_encoder: weights file is a directory",
    "load_checkpoint: zero-byte file",
    "load_checkpoint: a directory",
    "Learner.load: no saved model",
    "Learner.load: weights of another architecture",
    "Learner.fit(resume=True): no checkpoint",
]


# ----------------------------------------------- unwritable / full outputs
@contextmanager
def _immutable(folder: Path) -> Iterator[None]:
    """Make ``folder`` read-only even for root (``chattr +i``), or skip with the reason."""
    folder.mkdir(parents=True, exist_ok=True)
    if shutil.which("chattr") is None:
        pytest.skip("chattr not found: root ignores chmod, so a read-only folder cannot be made")
    done = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"chattr +i not allowed here ({done.stderr.strip()})")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


@contextmanager
def _tiny_disk(folder: Path, size: str = "64k") -> Iterator[None]:
    """Mount a tiny tmpfs on ``folder`` to simulate a full disk, or skip with the reason."""
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to simulate a full disk ({done.stderr.strip()})")
    try:
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=True)


OUTPUT_ENTRIES = ["VolumeCache.fill", "DataBunch.save", "ScanTable.to_csv", "Learner.fit"]


def _output_call(entry: str, tmp: Path, out: Path, n: int) -> tuple[Callable[[], Any], Path]:
    rng = np.random.default_rng(0)
    paths = [write_volume(tmp / "in" / f"s{i}.nii", _good(rng)) for i in range(n)]
    table = _table(paths)
    if entry == "VolumeCache.fill":
        cache = VolumeCache(out / "cache", CONFIG)
        return (lambda: cache.fill(table, progress=False)), out / "cache"
    if entry == "Learner.fit":
        csv = _cohort(tmp / "cohort", 8)
        data = DataBunch(
            ScanTable.from_csv(csv),
            PreprocessConfig(target_shape=(16, 16, 16)),
            val_size=0.25,
            test_size=0.25,
            seed=0,
        )
        learner = _learner(data, out / "run")
        return (lambda: learner.fit(1, 1e-3)), out / "run"
    if entry == "DataBunch.save":
        data = DataBunch.from_splits(train=table, preprocessing=CONFIG)
        # a big manifest, so that it cannot fit on the tiny disk
        return (lambda: data.save(out / "data.json")), out / "data.json"
    return (lambda: table.to_csv(out / "scans.csv")), out / "scans.csv"


# ------------------------------------------------------------ the matrix
def _cases() -> list[Any]:
    params = []
    for kind in SCAN_KINDS:
        for entry in (
            "load_nifti",
            "preprocess_scan",
            "VolumeCache.get",
            "VolumeCache.fill",
            "DataBunch.prepare",
        ):
            params.append(pytest.param("scan", kind, entry, id=f"{kind} -> {entry}"))
    for kind in ("empty mask", "mask grid differs"):
        for entry in ("load_mask", "preprocess_scan", "VolumeCache.fill"):
            params.append(pytest.param("mask", kind, entry, id=f"{kind} -> {entry}"))
    for kind, entry in [
        ("empty CSV", "ScanTable.from_csv"),
        ("CSV with a header only", "ScanTable.from_csv"),
        ("CSV is a directory", "ScanTable.from_csv"),
        ("CSV missing", "ScanTable.from_csv"),
        ("CSV row names a missing scan", "ScanTable.from_csv"),
        ("duplicate rows", "ScanTable.from_csv"),
        ("unknown label", "DataBunch"),
        ("missing label", "DataBunch"),
        ("a class with too few subjects", "DataBunch"),
        ("subject in two splits", "DataBunch.from_splits"),
    ]:
        params.append(pytest.param("table", kind, entry, id=f"{kind} -> {entry}"))
    for kind, entry in [
        ("CSV with BOM and semicolons", "ScanTable.from_csv"),
        ("paths with spaces and non-ASCII", "ScanTable.from_csv + VolumeCache.fill"),
        ("symlinks", "ScanTable.from_csv + VolumeCache.fill"),
    ]:
        params.append(pytest.param("works", kind, entry, id=f"{kind} -> {entry}"))
    for kind in (
        "get_ixi: missing folder",
        "get_ixi: folder without IXI scans",
        "from_bids: not a BIDS folder",
        "from_bids: file instead of folder",
    ):
        params.append(pytest.param("adapter", kind, kind.split(":")[0], id=kind))
    for kind in TRAINING_KINDS:
        params.append(pytest.param("training", kind, kind.split(":")[0], id=kind))
    return params


def _record(kind: str, entry: str, outcome: str) -> None:
    target = os.environ.get("TRANSMRI_CATALOGUE")
    if target:
        with open(target, "a", encoding="utf-8") as f:
            f.write(f"{kind}\t{entry}\t{outcome}\n")


def _assert_clear_error(exc: BaseException) -> None:
    """A transmri error, or a built-in exception: never a library's own type."""
    assert isinstance(exc, TransmriError) or type(exc).__module__ == "builtins", type(exc)


@pytest.mark.parametrize(("group", "kind", "entry"), _cases())
def test_bad_input(tmp_path: Path, group: str, kind: str, entry: str) -> None:
    build = {
        "scan": lambda: _scan_entry(entry, kind, tmp_path),
        "mask": lambda: _mask_case(entry, kind, tmp_path),
        "table": lambda: _table_case(kind, tmp_path),
        "works": lambda: _works_case(kind, tmp_path),
        "adapter": lambda: _adapter_case(kind, tmp_path),
        "training": lambda: _training_case(kind, tmp_path),
    }[group]
    case = build()
    if case.raises is None:
        result = case.call()
        assert case.check is not None
        case.check(result)
        _record(kind, entry, "works")
    else:
        with pytest.raises(case.raises, match=case.match) as info:
            case.call()
        _assert_clear_error(info.value)
        _record(kind, entry, f"{type(info.value).__name__}: {info.value}")
        if case.check is not None:
            case.check(info.value)
    for folder in case.clean:
        leftovers = [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []
        assert leftovers == [], "half-written output"
    assert temp_files(tmp_path) == []


@pytest.mark.parametrize("entry", OUTPUT_ENTRIES)
def test_read_only_output_folder(tmp_path: Path, entry: str) -> None:
    out = tmp_path / "out"
    call, target = _output_call(entry, tmp_path, out, 3)
    with _immutable(out):
        with pytest.raises(PermissionError, match=_q(target)) as info:
            call()
        assert info.value.errno in (errno.EPERM, errno.EACCES, errno.EROFS)
        assert list(out.iterdir()) == []  # nothing written, not even a temp file
    _record(
        "read-only output folder (chattr +i)", entry, f"{type(info.value).__name__}: {info.value}"
    )


@pytest.mark.parametrize("entry", OUTPUT_ENTRIES)
def test_disk_full(tmp_path: Path, entry: str) -> None:
    out = tmp_path / "full"
    n = 40 if entry == "VolumeCache.fill" else 100
    if entry == "Learner.fit":
        n = 1
    call, target = _output_call(entry, tmp_path, out, n)
    with _tiny_disk(out):
        if entry not in ("VolumeCache.fill", "Learner.fit"):  # leave 8 kB: less than needed
            (out / "filler").write_bytes(b"x" * 56 * 1024)
        with pytest.raises(OSError, match=_q(target)) as info:
            call()
        assert info.value.errno == errno.ENOSPC
        assert temp_files(out) == []
        if entry == "VolumeCache.fill":
            # what did fit is complete: every .npy has its sidecar, and every sha256 matches
            cache = VolumeCache(target, CONFIG)
            assert sorted(p.stem for p in target.glob("??/*.npy")) == cache.keys()
            assert cache.verify(rebuild=False) == []
            assert 0 < len(cache.keys()) < n
        elif entry == "Learner.fit":
            # every checksum file belongs to a checkpoint that is there and verifies
            from transmri.training.checkpoint import load_checkpoint

            for sidecar in (target / "checkpoints").glob("*.sha256"):
                load_checkpoint(sidecar.with_suffix(""))
        else:
            assert not target.exists()  # no half-written file
    _record("disk full (64 kB tmpfs)", entry, f"{type(info.value).__name__}: {info.value}")


def test_gzip_bomb_header_is_refused_before_reading(tmp_path: Path) -> None:
    # A .nii.gz whose header claims 2 GiB but whose gzip is tiny: refused from the sizes alone.
    src = write_volume(tmp_path / "small.nii", _good())
    raw = bytearray(src.read_bytes())
    dims = np.frombuffer(bytes(raw[40:56]), dtype="<i2").copy()
    dims[1:4] = (1024, 1024, 512)
    raw[40:56] = dims.tobytes()
    bomb = tmp_path / "bomb.nii.gz"
    bomb.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(
        DataFormatError, match=_q(bomb) + r": header claims shape \(1024, 1024, 512\)"
    ):
        load_nifti(bomb)
    assert nib.load(bomb).shape == (1024, 1024, 512)  # type: ignore[attr-defined]


# ------------------------------------------------------------ the command line
_EXPERIMENT = {
    "name": "bad",
    "data": {
        "source": {"adapter": "synthetic", "options": {"n_subjects": 20, "voxel_size": 16}},
        "target": {
            "adapter": "synthetic",
            "options": {"n_subjects": 20, "voxel_size": 16, "condition": "second"},
        },
    },
}

#: (kind, exit code, what the one stderr line must match) for the experiment commands.
_EXPERIMENT_KINDS = [
    ("missing file", 2, r"error: nope\.yaml: experiment file not found$"),
    ("malformed YAML", 2, r"error: experiment\.yaml: malformed YAML at line 2, column \d+"),
    ("unknown key", 2, r"error: experiment\.yaml: unknown key 'model\.hed'; expected one of arch"),
    (
        "bad value",
        2,
        r"error: experiment\.yaml: finetune\.lr: expected a finite number > 0, got -1",
    ),
    ("missing data path", 2, r"error: data\.target\.path: .*/missing\.csv does not exist$"),
    ("folder with another run", 2, r"error: .*/runs/bad: holds experiment 'bad' with another "),
    ("read-only output", 1, r"failed: PermissionError: \[Errno 1\] .*'.*/out/run'$"),
]
_REPORT_KINDS = [
    ("missing file", 2, r"error: nope: run folder not found$"),
    ("a file instead of a folder", 2, r"error: notes\.txt: expected a run folder, found a file$"),
    ("folder without run.json", 2, r"error: empty/run\.json: run\.json not found$"),
    ("malformed run.json", 2, r"error: broken/run\.json: expected JSON, got a parse error"),
    ("read-only output", 1, r"failed: PermissionError: \[Errno 1\] out/report\.html: cannot write"),
]
_DEMO_KINDS = [
    ("bad value", 2, r"error: resolution: expected a voxel size in \[4, 16\] mm, got 2\.0$"),
    ("folder with another run", 2, r"error: .*/other: holds experiment 'zzz' with another config"),
    ("read-only output", 1, r"failed: PermissionError: \[Errno 1\] .*'.*/out/demo'$"),
]


def _cli_cases() -> list[Any]:
    params = []
    for command in ("run", "prepare", "stats"):
        for kind, code, match in _EXPERIMENT_KINDS:
            params.append(
                pytest.param(command, kind, code, match, id=f"transmri {command}: {kind}")
            )
    for command, kinds in (("report", _REPORT_KINDS), ("demo", _DEMO_KINDS)):
        for kind, code, match in kinds:
            params.append(
                pytest.param(command, kind, code, match, id=f"transmri {command}: {kind}")
            )
    return params


def _cli_args(command: str, kind: str, tmp: Path) -> list[str]:
    """Write the bad input of ``kind`` under ``tmp``; return the command's arguments."""
    import yaml

    if command == "report":
        run = {
            "missing file": "nope",
            "a file instead of a folder": "notes.txt",
            "folder without run.json": "empty",
            "malformed run.json": "broken",
            "read-only output": "out",
        }[kind]
        (tmp / "notes.txt").write_text("not a run\n")
        (tmp / "empty").mkdir()
        (tmp / "broken").mkdir()
        (tmp / "broken" / "run.json").write_text("{oops")
        (tmp / "out").mkdir()
        (tmp / "out" / "run.json").write_text('{"kind": "experiment", "name": "x"}')
        return ["report", run]
    if command == "demo":
        if kind == "bad value":
            return ["demo", "--quick", "--resolution", "2", "--out", "d"]
        if kind == "folder with another run":
            (tmp / "other").mkdir()
            (tmp / "other" / "run.json").write_text(
                '{"kind": "experiment", "name": "zzz", "steps": {"prepare": {}}}'
            )
            return ["demo", "--quick", "--out", "other"]
        (tmp / "out").mkdir()
        return ["demo", "--quick", "--out", "out/demo"]
    data: dict[str, Any] = {**_EXPERIMENT}
    text = None
    if kind == "malformed YAML":
        text = "name: [oops\ndata: {"
    elif kind == "unknown key":
        data = {**data, "model": {"hed": "gap"}}
    elif kind == "bad value":
        data = {**data, "finetune": {"lr": -1}}
    elif kind == "missing data path":
        data = {
            **data,
            "data": {**data["data"], "target": {"adapter": "csv", "path": "missing.csv"}},
        }
    elif kind == "folder with another run":
        (tmp / "runs" / "bad").mkdir(parents=True)
        (tmp / "runs" / "bad" / "run.json").write_text(
            '{"kind": "experiment", "name": "bad", "steps": {"prepare": {}}}'
        )
    experiment = tmp / "experiment.yaml"
    experiment.write_text(text if text is not None else yaml.safe_dump(data))
    if kind == "missing file":
        return [command, "nope.yaml"]
    if kind == "read-only output":
        (tmp / "out").mkdir()
        return [command, "experiment.yaml", "--out", "out/run"]
    return [command, "experiment.yaml"]


#: The kinds run through the real ``transmri`` command in a subprocess (one per
#: command at least); the others call :func:`transmri.cli.main` in this process,
#: the same code path without the ~3 s start-up of a fresh interpreter.
_SUBPROCESS_KINDS = ("missing file", "read-only output")


def _in_process(
    args: list[str], cwd: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    from transmri.cli import main

    monkeypatch.chdir(cwd)
    monkeypatch.setenv("TRANSMRI_MALLOC", "default")  # leave this process's allocator alone
    capsys.readouterr()
    try:
        code = main(args)
    except SystemExit as exit_:  # argparse's usage errors
        code = int(exit_.code or 0)
    return code, capsys.readouterr().err


@pytest.mark.parametrize(("command", "kind", "code", "match"), _cli_cases())
def test_cli_bad_input(
    tmp_path: Path,
    command: str,
    kind: str,
    code: int,
    match: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Exit 2 for a bad input, 1 for a runtime failure; one line on stderr; nothing written."""
    from contextlib import nullcontext

    from tests.test_cli import files, transmri

    args = _cli_args(command, kind, tmp_path)
    before = files(tmp_path)
    guard = _immutable(tmp_path / "out") if kind == "read-only output" else nullcontext()
    with guard:
        if kind in _SUBPROCESS_KINDS:
            done = transmri(*args, cwd=tmp_path)
            returncode, stderr = done.returncode, done.stderr
        else:
            returncode, stderr = _in_process(args, tmp_path, monkeypatch, capsys)
    lines = stderr.strip().splitlines()
    assert returncode == code, stderr[-3000:]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr[-3000:]
    prefix = "transmri: error: " if code == 2 else "transmri: failed: "
    assert lines[0].startswith(prefix), lines[0]
    assert re.search(match, lines[0]), lines[0]
    assert files(tmp_path) == before  # nothing written, not even a temp file
    _record(kind, f"transmri {command}", f"exit {code}: {lines[0]}")


def test_locked_output_folder_is_named_not_a_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--out`` itself read-only: the message names its run.json, never ``.run.json.*.tmp``."""
    args = _cli_args("prepare", "bad value", tmp_path)  # writes experiment.yaml
    (tmp_path / "experiment.yaml").write_text(
        (tmp_path / "experiment.yaml").read_text().replace("lr: -1", "lr: 0.001")
    )
    with _immutable(tmp_path / "out"):
        code, stderr = _in_process([*args[:2], "--out", "out"], tmp_path, monkeypatch, capsys)
    assert code == 1, stderr
    assert re.search(r"PermissionError: \[Errno 1\] .*/out/run\.json: cannot write", stderr), stderr
    assert ".tmp" not in stderr
    assert not list((tmp_path / "out").iterdir())
