"""DICOM series -> NIfTI: checks, conversion, cache and bad input.

The real series (176 Siemens Trio MPRAGE slices) lives in
``../shared/data/dicom_t1``; tests that need it skip where it is absent. Bad
folders are built in ``tmp_path`` by copying and editing a few real slices
with pydicom.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from transmri.data import PreprocessConfig, ScanTable, load_nifti, preprocess_scan, read_grid
from transmri.data import dicom as dicom_module
from transmri.data.cache import VolumeCache
from transmri.data.dicom import convert_dicom_series, read_dicom_series
from transmri.errors import DataFormatError

pydicom = pytest.importorskip("pydicom")

DICOM_ROOT = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "dicom_t1"
SERIES = DICOM_ROOT / "t1_mprage"
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


@pytest.fixture(scope="module")
def series_dir() -> Path:
    if not (SERIES / "00001.dcm").exists():
        pytest.skip(f"real DICOM series not found at {SERIES} (needs ../shared/data/dicom_t1)")
    return SERIES


@pytest.fixture(scope="module")
def converted(series_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real series converted once with the default converter (dcm2niix)."""
    return convert_dicom_series(series_dir, cache_dir=tmp_path_factory.mktemp("dcache")).nifti


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def _copy_slices(src: Path, dst: Path, numbers: list[int]) -> list[Path]:
    dst.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copy(src / f"{n:05d}.dcm", dst / f"{n:05d}.dcm")) for n in numbers]


def _edit(path: Path, **values: object) -> None:
    ds = pydicom.dcmread(path)
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    ds.save_as(path)


# ------------------------------------------------------------ the real series
def test_headers_give_slices_in_order_along_the_normal(series_dir: Path) -> None:
    series = read_dicom_series(series_dir)
    assert len(series.files) == 176
    assert series.description == "t1_MPRAGEcr_noGRAPPA"
    assert series.spacing == pytest.approx(1.0, abs=1e-6)
    assert series.pixel_spacing == (1.0, 1.0)
    # Independent of our code: positions from pydicom, projected on the slice normal.
    ds = [pydicom.dcmread(f, stop_before_pixels=True) for f in series.files]
    iop = np.asarray(ds[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    along = np.asarray([np.asarray(d.ImagePositionPatient, dtype=float) @ normal for d in ds])
    assert np.all(np.diff(along) > 0.99) and np.all(np.diff(along) < 1.01)
    np.testing.assert_allclose(series.positions, along)
    assert series.series_uid == str(ds[0].SeriesInstanceUID)


def test_dcm2niix_volume_matches_every_slice_in_world_space(
    series_dir: Path, converted: Path
) -> None:
    img = nib.load(converted)
    volume = np.asarray(img.dataobj)
    assert volume.shape == (176, 256, 256)
    assert img.header.get_zooms()[:3] == pytest.approx((1.0, 1.0, 1.0))
    assert nib.aff2axcodes(img.affine) == ("R", "A", "S")
    inverse = np.linalg.inv(img.affine)
    series = read_dicom_series(series_dir)
    slice_axis_coords = []
    for f in series.files[::35]:  # slices 0, 35, ..., 175: first and last included
        ds = pydicom.dcmread(f)
        iop = np.asarray(ds.ImageOrientationPatient, dtype=float)
        ipp = np.asarray(ds.ImagePositionPatient, dtype=float)
        dr, dc = (float(v) for v in ds.PixelSpacing)
        rows, cols = np.meshgrid(np.arange(ds.Rows), np.arange(ds.Columns), indexing="ij")
        # DICOM: pixel (r, c) lies at IPP + c * dc * row_cosine + r * dr * column_cosine (LPS).
        lps = ipp + (cols[..., None] * dc) * iop[:3] + (rows[..., None] * dr) * iop[3:]
        ras = lps.reshape(-1, 3) @ LPS_TO_RAS
        ijk = (inverse[:3, :3] @ ras.T).T + inverse[:3, 3]
        assert np.abs(ijk - np.round(ijk)).max() < 0.01  # on the voxel grid
        ijk = np.round(ijk).astype(int)
        np.testing.assert_array_equal(volume[tuple(ijk.T)], ds.pixel_array.reshape(-1))
        slice_axis_coords.append(ijk[:, 0].mean())
    # Slice order: the files in position order land on consecutive voxel planes.
    steps = np.diff(slice_axis_coords)
    assert np.all(steps == steps[0]) and abs(steps[0]) == 35
    assert sorted(slice_axis_coords)[::5] == [0, 175]


def test_intensity_range_equals_the_dicom_pixels(series_dir: Path, converted: Path) -> None:
    volume = np.asarray(nib.load(converted).dataobj)
    pixels = [pydicom.dcmread(f).pixel_array for f in sorted(series_dir.glob("*.dcm"))]
    assert volume.min() == min(p.min() for p in pixels) == 0
    assert volume.max() == max(p.max() for p in pixels) == 1579


def test_dicom2nifti_gives_the_same_volume_in_world_space(
    series_dir: Path, converted: Path, tmp_path: Path
) -> None:
    other = convert_dicom_series(series_dir, cache_dir=tmp_path, converter="dicom2nifti")
    a, b = nib.load(converted), nib.load(other.nifti)
    assert other.sidecar["ConversionSoftware"] == "dicom2nifti"
    va, vb = np.asarray(a.dataobj), np.asarray(b.dataobj)
    idx = np.indices(va.shape).reshape(3, -1)
    world = a.affine[:3, :3] @ idx + a.affine[:3, 3:]
    inv = np.linalg.inv(b.affine)
    jdx = inv[:3, :3] @ world + inv[:3, 3:]
    assert np.abs(jdx - np.round(jdx)).max() < 0.01
    np.testing.assert_array_equal(va[tuple(idx)], vb[tuple(np.round(jdx).astype(int))])


def test_sidecar_describes_scanner_sequence_and_conversion(
    series_dir: Path, tmp_path: Path
) -> None:
    result = convert_dicom_series(series_dir, cache_dir=tmp_path)
    on_disk = json.loads(result.sidecar_path.read_text())
    assert on_disk == result.sidecar
    assert on_disk["Manufacturer"] == "Siemens"
    assert on_disk["ManufacturersModelName"] == "TrioTim"
    assert on_disk["SeriesDescription"] == on_disk["ProtocolName"] == "t1_MPRAGEcr_noGRAPPA"
    assert on_disk["MagneticFieldStrength"] == 3
    assert on_disk["RepetitionTime"] == pytest.approx(2.25)
    assert on_disk["EchoTime"] == pytest.approx(0.00398)
    assert on_disk["VoxelSize"] == [1.0, 1.0, 1.0]
    assert on_disk["SeriesInstanceUID"] == read_dicom_series(series_dir).series_uid
    assert on_disk["ConversionSoftware"] == "dcm2niix"
    assert on_disk["ConversionSoftwareVersion"].startswith("v1.")
    assert on_disk["SourceFiles"] == 176


def test_cache_hit_and_source_untouched(series_dir: Path, tmp_path: Path) -> None:
    before = _snapshot(series_dir)
    first = convert_dicom_series(series_dir, cache_dir=tmp_path)
    second = convert_dicom_series(series_dir, cache_dir=tmp_path)
    assert not first.cached and second.cached
    assert second.nifti == first.nifti == tmp_path / first.key[:2] / first.key / "scan.nii.gz"
    assert _snapshot(series_dir) == before
    # Nothing but the entry in the cache: no temp folder left behind.
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        first.key[:2],
        f"{first.key[:2]}/{first.key}",
        f"{first.key[:2]}/{first.key}/scan.json",
        f"{first.key[:2]}/{first.key}/scan.nii.gz",
    ]


def test_an_incomplete_entry_is_rebuilt(series_dir: Path, tmp_path: Path) -> None:
    folder = _copy_slices(series_dir, tmp_path / "in", [1, 2, 3])[0].parent
    first = convert_dicom_series(folder, cache_dir=tmp_path / "cache")
    first.sidecar_path.unlink()  # e.g. removed by hand
    again = convert_dicom_series(folder, cache_dir=tmp_path / "cache")
    assert not again.cached and again.sidecar_path.is_file()
    assert again.sidecar["SourceFiles"] == 3
    assert nib.load(again.nifti).shape == (3, 256, 256)


def test_cache_key_follows_the_content(series_dir: Path, tmp_path: Path) -> None:
    a = _copy_slices(series_dir, tmp_path / "a", [1, 2, 3, 4])
    b = _copy_slices(series_dir, tmp_path / "b", [1, 2, 3, 4])
    same = [convert_dicom_series(f[0].parent, cache_dir=tmp_path / "c").key for f in (a, b)]
    assert same[0] == same[1]  # same bytes, other folder: one entry
    _edit(b[0], PatientName="Other^Name")
    assert convert_dicom_series(b[0].parent, cache_dir=tmp_path / "c").key != same[0]


def test_failed_conversion_leaves_nothing(
    series_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _copy_slices(series_dir, tmp_path / "in", [1, 2, 3])[0].parent

    def broken(*_: object) -> dict[str, object]:
        raise DataFormatError("simulated failure after conversion")

    monkeypatch.setattr(dicom_module, "_check_volume", broken)
    cache = tmp_path / "cache"
    with pytest.raises(DataFormatError, match="simulated failure"):
        convert_dicom_series(folder, cache_dir=cache)
    assert [p for p in cache.rglob("*") if p.is_file()] == []


def test_load_nifti_and_scan_table_accept_a_series_folder(
    series_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRANSMRI_DICOM_CACHE", str(tmp_path / "cache"))
    table = ScanTable.from_frame(
        pd.DataFrame({"path": [str(series_dir)], "subject": ["s1"], "label": ["CN"]}),
        source="scans.csv",
    )
    data, affine = load_nifti(table.paths[0])
    assert data.shape == (176, 256, 256) and data.dtype == np.float32
    assert data.max() == 1579.0
    assert read_grid(series_dir) == (data.shape, pytest.approx(affine))
    volume = preprocess_scan(series_dir, None, PreprocessConfig(target_shape=(16, 16, 16)))
    assert volume.shape == (16, 16, 16) and np.isfinite(volume).all()
    assert len(list((tmp_path / "cache").rglob("scan.nii.gz"))) == 1  # converted once


def test_volume_cache_keys_a_series_folder_by_its_content(
    series_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRANSMRI_DICOM_CACHE", str(tmp_path / "dcache"))
    copy = tmp_path / "copy"
    _copy_slices(series_dir, copy, list(range(1, 177)))
    cache = VolumeCache(tmp_path / "vcache", PreprocessConfig(target_shape=(16, 16, 16)))
    volume = cache.get(series_dir)
    assert volume.shape == (16, 16, 16) and np.isfinite(volume).all()
    assert cache.key(copy) == cache.key(series_dir)  # same files, same entry
    _edit(copy / "00088.dcm", SeriesDescription="edited")
    assert cache.key(copy) != cache.key(series_dir)  # one slice changed, a new entry


def test_scan_table_refuses_a_folder_as_mask_or_an_empty_folder(tmp_path: Path) -> None:
    scan, empty = tmp_path / "scan", tmp_path / "empty"
    scan.mkdir()
    (scan / "00001.dcm").write_bytes(b"x")
    empty.mkdir()
    frame = pd.DataFrame({"path": [str(scan)], "subject": ["s1"], "label": ["CN"]})
    with pytest.raises(DataFormatError, match=r"row 1, column 'mask': expected a file, found a"):
        ScanTable.from_frame(frame.assign(mask=[str(scan)]), mask_col="mask", source="t.csv")
    with pytest.raises(DataFormatError, match=r"row 1, column 'path': .*found an empty directory"):
        ScanTable.from_frame(frame.assign(path=[str(empty)]), source="t.csv")


# -------------------------------------------------------------------- bad input
def _refused(folder: Path, cache: Path, match: str) -> None:
    """The folder is refused before any conversion; nothing reaches the cache or the folder."""
    before = _snapshot(folder)
    with pytest.raises(DataFormatError, match=match):
        convert_dicom_series(folder, cache_dir=cache)
    assert not cache.exists()
    assert _snapshot(folder) == before


def test_several_series_are_named_and_one_can_be_chosen(series_dir: Path, tmp_path: Path) -> None:
    files = _copy_slices(series_dir, tmp_path / "mixed", [1, 2, 3, 4, 5, 6, 7, 8])
    for f in files[5:]:
        _edit(f, SeriesInstanceUID="1.2.3.4", SeriesDescription="localizer")
    uid = re.escape(read_dicom_series(series_dir).series_uid)
    _refused(
        files[0].parent,
        tmp_path / "cache",
        rf"mixed: 2 DICOM series in one folder: 1\.2\.3\.4 \('localizer', 3 files\); "
        rf"{uid} \('t1_MPRAGEcr_noGRAPPA', 5 files\); "
        r"pass series_uid='<SeriesInstanceUID>'",
    )
    chosen = read_dicom_series(files[0].parent, series_uid="1.2.3.4")
    assert [f.name for f in chosen.files] == ["00008.dcm", "00007.dcm", "00006.dcm"]
    with pytest.raises(DataFormatError, match=r"no series with SeriesInstanceUID '9\.9'"):
        read_dicom_series(files[0].parent, series_uid="9.9")


def test_missing_slice_by_position(series_dir: Path, tmp_path: Path) -> None:
    folder = _copy_slices(series_dir, tmp_path / "gap", [1, 2, 3, 4, 6, 7])[0].parent
    for f in folder.iterdir():  # renumber so that only the positions show the gap
        n = int(f.stem)
        _edit(f, InstanceNumber=n if n < 5 else n - 1)
    _refused(
        folder,
        tmp_path / "cache",
        r"gap: 1 slice\(s\) missing between 00006\.dcm and 00004\.dcm "
        r"\(gap of 2\.000 mm, slice spacing 1\.000 mm\)",
    )


def test_missing_slice_by_instance_number(series_dir: Path, tmp_path: Path) -> None:
    folder = _copy_slices(series_dir, tmp_path / "numbers", [1, 2, 3, 4, 5])[0].parent
    _edit(folder / "00005.dcm", InstanceNumber=7)
    _refused(
        folder,
        tmp_path / "cache",
        r"numbers: 2 slice\(s\) missing: InstanceNumber 5, 6 absent between 1 and 7",
    )


def test_non_image_object(series_dir: Path, tmp_path: Path) -> None:
    folder = _copy_slices(series_dir, tmp_path / "with_report", [1, 2, 3])[0].parent
    report = folder / "report.dcm"
    ds = pydicom.dcmread(folder / "00001.dcm")
    del ds.PixelData
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"  # Basic Text SR
    ds.save_as(report)
    _refused(folder, tmp_path / "cache", r"report\.dcm: a DICOM object without pixel data")


def test_inconsistent_slice_spacing(series_dir: Path, tmp_path: Path) -> None:
    folder = _copy_slices(series_dir, tmp_path / "uneven", [1, 2, 3, 4, 5, 6])[0].parent
    ds = pydicom.dcmread(folder / "00006.dcm", stop_before_pixels=True)
    iop = np.asarray(ds.ImageOrientationPatient, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    moved = np.asarray(ds.ImagePositionPatient, dtype=float) - 0.4 * normal
    _edit(folder / "00006.dcm", ImagePositionPatient=[f"{v:.6f}" for v in moved])
    _refused(
        folder,
        tmp_path / "cache",
        r"uneven: inconsistent slice spacing: (0\.600|1\.400) mm between 0000[56]\.dcm and "
        r"0000[56]\.dcm, expected 1\.000 mm",
    )


def test_empty_folder(tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    _refused(folder, tmp_path / "cache", r"empty: no DICOM files in this folder")
    with pytest.raises(IsADirectoryError, match=r"empty: expected a scan, found a directory"):
        load_nifti(folder)


def test_a_file_that_is_not_dicom(series_dir: Path, tmp_path: Path) -> None:
    folder = _copy_slices(series_dir, tmp_path / "notes", [1, 2])[0].parent
    (folder / "notes.txt").write_text("subject,age\ns1,71\n")
    (folder / ".hidden").write_text("ignored")
    _refused(folder, tmp_path / "cache", r"notes\.txt: not a DICOM file")


def test_not_a_folder(tmp_path: Path) -> None:
    f = tmp_path / "one.dcm"
    f.write_bytes(b"")
    with pytest.raises(NotADirectoryError, match=r"one\.dcm: expected a DICOM series folder"):
        read_dicom_series(f)
    with pytest.raises(FileNotFoundError, match=r"absent: DICOM series folder not found"):
        read_dicom_series(tmp_path / "absent")


def test_unknown_converter(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="converter"):
        convert_dicom_series(tmp_path, converter="mri_convert")  # type: ignore[arg-type]
