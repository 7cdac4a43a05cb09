"""A content-addressed cache of preprocessed volumes as memory-mapped ``.npy``.

Each entry is keyed by what determines its content: the bytes of the scan,
of its mask and of the dataset-wide mask, the preprocessing fingerprint and
the stored dtype. Editing a scan, or changing any preprocessing setting,
gives a new key, so a stale volume is never served.

Layout::

    root/ab/abcdef....npy    the volume (``np.save`` format, float16 by default)
    root/ab/abcdef....json   sidecar: shape, dtype, size, sha256 of the .npy, source

Every file is written to a temp file in the same folder, fsynced and renamed
into place; the sidecar is written last, so an entry is valid only once its
sidecar exists. Two processes filling the same cache at once both succeed:
preprocessing is deterministic, so they write identical bytes and the last
rename wins.

Example:
    >>> cache = VolumeCache("~/.cache/transmri", PreprocessConfig(target_shape=(64, 64, 48)))
    >>> cache.fill(table, n_jobs=2)  # doctest: +SKIP
    >>> volume = cache.get(table.paths[0], table.masks[0])  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import stat
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypeAlias, TypeGuard

import numpy as np
import torch
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from transmri._files import atomic_write_bytes
from transmri._validation import check_choice, check_existing_file
from transmri.data.preprocess import PreprocessConfig, preprocess_scan
from transmri.data.table import ScanTable
from transmri.errors import ConfigError, DataFormatError, DataLeakageError, IntegrityError

__all__ = [
    "CACHE_FORMAT_VERSION",
    "STALE_TEMP_SECONDS",
    "CacheDtype",
    "VolumeCache",
    "check_content_leakage",
]

CACHE_FORMAT_VERSION = 1
"""Version of the entry layout; part of every key."""

STALE_TEMP_SECONDS = 3600.0
"""Age after which :meth:`VolumeCache.verify` takes a temp file for a killed writer's."""

CacheDtype: TypeAlias = Literal["float16", "float32"]

PathLike: TypeAlias = str | os.PathLike[str]

_FLOAT16_MAX = float(np.finfo(np.float16).max)
_TORCH_DTYPES = {"float16": torch.float16, "float32": torch.float32}
_HASH_CHUNK = 1 << 20


class _Entry(NamedTuple):
    """Layout of a validated entry's .npy: size, array shape/dtype, data offset."""

    nbytes: int
    shape: tuple[int, ...]
    dtype: str
    offset: int


def _sha256_file(path: PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


@functools.lru_cache(maxsize=65536)
def _sha256_memo(path: str, size: int, mtime_ns: int) -> str:
    """Hashing a scan on every access would dominate a cache hit, so hashes
    are memoised per process on (path, size, mtime)."""
    return _sha256_file(path)


def _file_sha256(path: PathLike, *, what: str) -> str:
    try:
        st = os.stat(path)  # one syscall on the hot path; the checks below name the problem
    except OSError:
        check_existing_file(path, what=what)
        raise
    if stat.S_ISDIR(st.st_mode):
        if what == "scan" and any(os.scandir(path)):
            return _folder_sha256(Path(path))
        check_existing_file(path, what=what)
    return _sha256_memo(os.path.abspath(path), st.st_size, st.st_mtime_ns)


def _folder_sha256(folder: Path) -> str:
    """A DICOM series folder's key: the names and contents of its visible files."""
    digest = hashlib.sha256()
    for entry in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        st = entry.stat()
        digest.update(entry.name.encode("utf-8", "surrogateescape") + b"\0")
        digest.update(_sha256_memo(str(entry.absolute()), st.st_size, st.st_mtime_ns).encode())
    return digest.hexdigest()


def check_content_leakage(parts: Mapping[str, ScanTable]) -> None:
    """Raise if a scan's bytes appear in two parts (splits, or pretraining vs test).

    Subject ids can be renamed or lowercased; the bytes cannot: a scan copied
    under another subject id into another split is the same scan. The scans
    are hashed like the cache's keys (memoised per process, so a later cache
    fill hashes nothing twice).

    Args:
        parts: name -> scans, e.g. ``{"train": ..., "val": ..., "test": ...}``.

    Raises:
        DataLeakageError: naming both parts, subjects and files of the first
            shared scan, and how many are shared.
    """
    if sum(1 for table in parts.values() if len(table)) < 2:
        return
    first: dict[str, tuple[str, str, str]] = {}  # sha256 -> (part, subject, path)
    shared: list[tuple[tuple[str, str, str], tuple[str, str, str]]] = []
    for name, table in parts.items():
        seen_here: set[str] = set()
        for path, subject in zip(table.paths, table.subjects):
            try:
                digest = _file_sha256(path, what="scan")
            except (OSError, DataFormatError):
                continue  # reading the scan names it, with its row
            if digest in seen_here:
                continue
            seen_here.add(digest)
            other = first.setdefault(digest, (name, subject, path))
            if other[0] != name:
                shared.append((other, (name, subject, path)))
    if shared:
        (a_part, a_subject, a_path), (b_part, b_subject, b_path) = shared[0]
        more = f" ({len(shared)} shared scans in all)" if len(shared) > 1 else ""
        raise DataLeakageError(
            f"{a_part} and {b_part} hold byte-identical scans: subject {a_subject!r} "
            f"({a_path}) and subject {b_subject!r} ({b_path}){more}; the same scan under two "
            "subject ids would be tested on what was trained on: remove the copies"
        )


class VolumeCache:
    """Preprocessed volumes on disk, memory-mapped on read, built on a miss.

    The constructor only stores its settings; folders are made on first write.

    Args:
        root: the cache folder (shared by any number of configs and datasets).
        config: the preprocessing applied to every volume.
        dtype: ``"float16"`` (half the disk and page cache; ~3 significant
            digits, enough for [0, 1] or z-scored intensities) or ``"float32"``.

    Example:
        >>> cache = VolumeCache("/tmp/cache", PreprocessConfig(target_shape=(32, 32, 32)))
        >>> cache.dtype
        'float16'
    """

    def __init__(
        self, root: PathLike, config: PreprocessConfig, *, dtype: CacheDtype = "float16"
    ) -> None:
        if not isinstance(config, PreprocessConfig):
            raise TypeError(f"config: expected a PreprocessConfig, got {type(config).__name__}")
        self.root = Path(root).expanduser()
        self.config = config
        self.dtype: CacheDtype = check_choice("dtype", dtype, ("float16", "float32"))
        self._fingerprint = config.fingerprint()
        self._entries: dict[str, _Entry] = {}

    def __repr__(self) -> str:
        return f"VolumeCache({str(self.root)!r}, dtype={self.dtype!r})"

    # ------------------------------------------------------------------ keys
    def key(self, path: PathLike, mask: PathLike | None = None) -> str:
        """The entry key of a scan (and its mask) under this config and dtype.

        Hashes file contents (memoised per process while size and mtime are
        unchanged), so moving a file keeps its key and editing it changes it.
        """
        parts = [
            f"transmri-cache-v{CACHE_FORMAT_VERSION}",
            _file_sha256(path, what="scan"),
            "none" if mask is None else _file_sha256(mask, what="mask"),
            "none" if self.config.mask is None else _file_sha256(self.config.mask, what="mask"),
            self._fingerprint,
            self.dtype,
        ]
        return hashlib.sha256("\n".join(parts).encode("ascii")).hexdigest()

    def entry_path(self, key: str) -> Path:
        """Where the ``.npy`` of ``key`` lives (the sidecar is beside it, ``.json``)."""
        return self.root / key[:2] / f"{key}.npy"

    # ------------------------------------------------------------------ read
    def get(
        self, path: PathLike, mask: PathLike | None = None, *, verify: bool = False
    ) -> np.ndarray:
        """The preprocessed volume of a scan, memory-mapped read-only.

        Builds (and stores) it on a miss. A truncated entry is detected cheaply
        (file size against the sidecar) and rebuilt; ``verify=True`` also
        re-checks the sha256 of the bytes.

        Returns:
            A read-only ``np.memmap`` of shape (D, H, W) and the cache dtype.

        Raises:
            DataFormatError: the scan or mask cannot be read or preprocessed
                (the message names the file).
        """
        key = self.key(path, mask)
        for _ in range(2):
            entry = self._entry_for(key, path, mask, verify=verify)
            try:
                return np.memmap(
                    self.entry_path(key),
                    dtype=entry.dtype,
                    mode="r",
                    offset=entry.offset,
                    shape=entry.shape,
                )
            except (OSError, ValueError):  # removed or cut short since it was checked
                self._forget(key)
        raise IntegrityError(f"{self.entry_path(key)}: entry keeps vanishing while being read")

    def get_tensor(
        self, path: PathLike, mask: PathLike | None = None, *, verify: bool = False
    ) -> torch.Tensor:
        """The preprocessed volume as a new float32 tensor of shape (1, D, H, W).

        Same as ``torch.from_numpy(np.asarray(get(...), np.float32))[None]``
        but about 4x faster: one read into a tensor, then torch's vectorised
        half-to-float conversion.
        """
        key = self.key(path, mask)
        for _ in range(2):
            entry = self._entry_for(key, path, mask, verify=verify)
            buffer = torch.empty(entry.shape, dtype=_TORCH_DTYPES[entry.dtype])
            view = buffer.numpy().view(np.uint8).reshape(-1).data
            try:
                with open(self.entry_path(key), "rb", buffering=0) as f:
                    if os.fstat(f.fileno()).st_size != entry.nbytes:
                        raise ValueError("size differs from the sidecar")
                    f.seek(entry.offset)
                    if f.readinto(view) != len(view):
                        raise ValueError("short read")
            except (OSError, ValueError):
                self._forget(key)
                continue
            return buffer.to(torch.float32).unsqueeze(0)
        raise IntegrityError(f"{self.entry_path(key)}: entry keeps vanishing while being read")

    def __contains__(self, item: object) -> bool:
        """``(path, mask) in cache``: whether a valid entry exists (no building)."""
        if not isinstance(item, tuple) or len(item) != 2:
            return False
        return self._check(self.key(item[0], item[1]), check_sha=False) is not None

    def _entry_for(
        self, key: str, path: PathLike, mask: PathLike | None, *, verify: bool
    ) -> _Entry:
        entry = self._check(key, check_sha=verify)
        if entry is None:
            self._build(key, path, mask)
            entry = self._check(key, check_sha=False)
            if entry is None:  # only if another process broke it meanwhile
                raise IntegrityError(
                    f"{self.entry_path(key)}: entry unreadable right after writing"
                )
        return entry

    def _sidecar(self, key: str) -> dict[str, Any] | None:
        try:
            data = json.loads(self.entry_path(key).with_suffix(".json").read_bytes())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _check(self, key: str, *, check_sha: bool) -> _Entry | None:
        """The entry's layout if valid; otherwise remove what is left of it, None.

        Once an entry has been validated, this process remembers its layout,
        so later checks cost one ``stat`` (the size must still match).
        """
        npy = self.entry_path(key)
        known = self._entries.get(key)
        if known is not None and not check_sha:
            try:
                if os.stat(npy).st_size == known.nbytes:
                    return known
            except OSError:
                pass
            self._forget(key)
        meta = self._sidecar(key)
        if meta is None:
            return None
        try:
            if meta.get("key") != key or meta.get("format_version") != CACHE_FORMAT_VERSION:
                raise ValueError("the sidecar belongs to another key or format")
            if npy.stat().st_size != meta["nbytes"]:
                raise ValueError("size differs from the sidecar")
            if check_sha and _sha256_file(npy) != meta["sha256"]:
                raise ValueError("sha256 differs from the sidecar")
            volume = np.load(npy, mmap_mode="r", allow_pickle=False)
            if list(volume.shape) != meta["shape"] or str(volume.dtype) != meta["dtype"]:
                raise ValueError("shape or dtype differs from the sidecar")
            entry = _Entry(
                nbytes=int(meta["nbytes"]),
                shape=tuple(int(s) for s in volume.shape),
                dtype=str(volume.dtype),
                offset=int(volume.offset),
            )
            del volume
        except (OSError, ValueError, KeyError, TypeError):
            self._remove(key)
            return None
        self._entries[key] = entry
        return entry

    def _forget(self, key: str) -> None:
        self._entries.pop(key, None)

    # ----------------------------------------------------------------- write
    def _build(self, key: str, path: PathLike, mask: PathLike | None) -> None:
        self._store(key, *self._encode(key, path, mask))

    def _encode(
        self, key: str, path: PathLike, mask: PathLike | None
    ) -> tuple[bytes, dict[str, Any]]:
        """Preprocess a scan into the entry's ``.npy`` bytes and its sidecar.

        Raises:
            FileNotFoundError, DataFormatError: the scan or mask cannot be read
                or preprocessed (the message names the file).
        """
        volume = preprocess_scan(path, mask, self.config)
        if self.dtype == "float16":
            peak = float(np.abs(volume).max())
            if peak > _FLOAT16_MAX:
                raise DataFormatError(
                    f"{path}: preprocessed intensities reach {peak:g}, beyond float16's "
                    f"{_FLOAT16_MAX:g}; use scaling='minmax'/'zscore' or "
                    f"VolumeCache(..., dtype='float32')"
                )
        array = np.ascontiguousarray(volume, dtype=self.dtype)
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        payload = buffer.getvalue()
        sidecar = {
            "format_version": CACHE_FORMAT_VERSION,
            "key": key,
            "shape": list(array.shape),
            "dtype": str(array.dtype),
            "nbytes": len(payload),
            "sha256": hashlib.sha256(payload).hexdigest(),
            "source": str(Path(path).absolute()),
            "mask": None if mask is None else str(Path(mask).absolute()),
            "preprocessing": self.config.to_dict(),
        }
        return payload, sidecar

    def _store(self, key: str, payload: bytes, sidecar: dict[str, Any]) -> None:
        """Write an entry: the ``.npy`` first, then the sidecar that makes it valid.

        Raises:
            OSError: the cache cannot be written (disk full, read-only folder,
                permissions), of the same type (e.g. ``PermissionError``) and
                errno as the cause, naming the entry and the cache folder. No
                part of the entry is left.
        """
        npy = self.entry_path(key)
        json_file = npy.with_suffix(".json")
        try:
            npy.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(npy, payload)
            atomic_write_bytes(json_file, json.dumps(sidecar, indent=1).encode("utf-8"))
        except OSError as exc:
            if not json_file.exists():  # our .npy alone is not an entry; another's is complete
                npy.unlink(missing_ok=True)
            reason = exc.strerror or str(exc)
            raise type(exc)(
                exc.errno,
                f"{npy}: cannot write the cache entry ({reason}); check the free space and "
                f"the permissions of the cache folder {self.root}",
            ) from exc

    def _remove(self, key: str) -> None:
        self._forget(key)
        npy = self.entry_path(key)
        # sidecar first: without it the entry is invalid even if the .npy stays
        npy.with_suffix(".json").unlink(missing_ok=True)
        npy.unlink(missing_ok=True)

    def _sweep_temp_files(self) -> int:
        """Remove temp files left by killed writers, once older than :data:`STALE_TEMP_SECONDS`.

        A younger temp file may belong to a writer still at work (in this or
        another process, or on another machine sharing the folder).
        """
        if not self.root.is_dir():
            return 0
        removed = 0
        now = time.time()
        for tmp in self.root.glob("??/.*.tmp"):
            try:
                if now - tmp.stat().st_mtime > STALE_TEMP_SECONDS:
                    tmp.unlink()
                    removed += 1
            except FileNotFoundError:  # its writer finished or another sweep took it
                continue
        return removed

    # ------------------------------------------------------------------ fill
    def fill(
        self,
        table: ScanTable,
        *,
        n_jobs: int = 1,
        shard: tuple[int, int] = (0, 1),
        progress: bool = True,
    ) -> int:
        """Preprocess and store every scan of ``table`` not cached yet.

        Args:
            table: the scans (and per-scan masks).
            n_jobs: worker processes (joblib); ``-1`` for all cores.
            shard: ``(i, n)``: process only rows at positions ``p`` with
                ``p % n == i``, so ``n`` cluster jobs (e.g. a SLURM array) fill
                one cache together without overlap.
            progress: show a tqdm progress bar.

        Returns:
            How many entries this call built (rows already cached are skipped).

        Raises:
            DataFormatError: after every other row was processed (their
                entries stay valid), naming the table's source, the row and
                the file of the first failure and how many rows failed.
        """
        if not isinstance(table, ScanTable):
            raise TypeError(f"table: expected a ScanTable, got {type(table).__name__}")
        n_jobs = _check_n_jobs(n_jobs)
        index, count = _check_shard(shard)
        rows = table.frame["row"].tolist()
        todo = [
            (p, str(path), mask, int(rows[p]))
            for p, (path, mask) in enumerate(zip(table.paths, table.masks))
            if p % count == index
        ]
        results: Iterator[tuple[bool, int, str | None]]
        if n_jobs == 1:
            results = (
                _fill_one(self, path, mask, table.source, row) for _, path, mask, row in todo
            )
        else:
            jobs = (
                delayed(_fill_one)(self, path, mask, table.source, row)
                for _, path, mask, row in todo
            )
            results = Parallel(n_jobs=n_jobs, return_as="generator_unordered")(jobs)
        built = 0
        errors: list[tuple[int, str]] = []
        bar = tqdm(total=len(todo), desc="caching volumes", unit="scan", disable=not progress)
        try:
            for was_built, row, error in results:
                built += int(was_built)
                if error is not None:
                    errors.append((row, error))
                bar.update(1)
        finally:
            bar.close()
        if errors:
            errors.sort()
            more = f" ({len(errors)} of {len(todo)} rows failed)" if len(errors) > 1 else ""
            raise DataFormatError(errors[0][1] + more)
        return built

    # ---------------------------------------------------------------- verify
    def keys(self) -> list[str]:
        """Keys of every entry with a sidecar under ``root`` (any config)."""
        if not self.root.is_dir():
            return []
        return sorted(p.stem for p in self.root.glob("??/*.json"))

    def verify(self, key: str | None = None, *, rebuild: bool = True) -> list[str]:
        """Re-check the sha256 of one entry (``key``) or of all, fixing bad ones.

        A corrupt entry is removed, then rebuilt from its source scan when
        ``rebuild`` and the source still exists unchanged (same key under this
        cache's config); otherwise it is rebuilt on the next :meth:`get`.
        Checking all entries also removes temp files that killed writers left
        behind (those older than :data:`STALE_TEMP_SECONDS`).

        Returns:
            The keys that were corrupt.
        """
        if key is None:
            self._sweep_temp_files()
        keys = self.keys() if key is None else [key]
        bad: list[str] = []
        for k in keys:
            meta = self._sidecar(k)
            if self._check(k, check_sha=True) is not None:
                continue
            bad.append(k)
            if rebuild and meta is not None:
                self._rebuild_from(k, meta)
        return bad

    def _rebuild_from(self, key: str, meta: dict[str, Any]) -> None:
        source, mask = meta.get("source"), meta.get("mask")
        if not isinstance(source, str) or not Path(source).is_file():
            return
        if mask is not None and (not isinstance(mask, str) or not Path(mask).is_file()):
            return
        if self.key(source, mask) == key:
            self._build(key, source, mask)


def _fill_one(
    cache: VolumeCache, path: str, mask: str | None, source: str, row: int
) -> tuple[bool, int, str | None]:
    """Build one entry; a bad scan is reported, not raised, so the others go on.

    A failure to *write* the cache (disk full, read-only folder) is raised:
    it is not the scan's fault and would repeat for every other row.
    """
    try:
        key = cache.key(path, mask)
        if cache._check(key, check_sha=False) is not None:
            return False, row, None
        payload, sidecar = cache._encode(key, path, mask)
    except (OSError, ValueError) as exc:
        return False, row, f"{source}, row {row}: {exc}"
    cache._store(key, payload, sidecar)
    return True, row, None


def _check_n_jobs(n_jobs: object) -> int:
    if n_jobs == -1:
        return os.cpu_count() or 1
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs < 1:
        raise ConfigError(f"n_jobs: expected an integer >= 1 or -1, got {n_jobs!r}")
    return n_jobs


def _check_shard(shard: object) -> tuple[int, int]:
    message = f"shard: expected (index, count) with 0 <= index < count, got {shard!r}"
    if not isinstance(shard, tuple | list) or len(shard) != 2:
        raise ConfigError(message)
    index, count = shard[0], shard[1]
    if not (_is_int(index) and _is_int(count) and 0 <= index < count):
        raise ConfigError(message)
    return (int(index), int(count))


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)
