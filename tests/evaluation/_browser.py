"""Headless Chromium for tests: find or install it, render a page, inspect the result.

No Python dependency beyond the standard library (and matplotlib to read a
screenshot's pixels). Chromium is driven with command-line switches only:
``--dump-dom`` gives the DOM after load, ``--screenshot`` a PNG, and
``--enable-logging=stderr`` puts the page's console messages on stderr as
lines like ``INFO:CONSOLE:1] "Uncaught ReferenceError: ...", source: file://...``.

Usage in a test module::

    @pytest.fixture(scope="session")
    def chromium() -> Path:
        path, reason = ensure_chromium()
        if path is None:
            pytest.skip(reason)
        return path
"""

from __future__ import annotations

import base64
import fcntl
import os
import re
import shutil
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "PageRender",
    "console_messages",
    "data_uri_images",
    "ensure_chromium",
    "external_references",
    "find_chromium",
    "is_blank_png",
    "png_size",
    "render_page",
]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_LOCK = Path(tempfile.gettempdir()) / "transmri-chromium-install.lock"
_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--enable-logging=stderr",
    "--v=0",
)


def find_chromium() -> Path | None:
    """Path of a Chromium executable (``/usr/bin/chromium`` first), or ``None``."""
    if Path("/usr/bin/chromium").is_file():
        return Path("/usr/bin/chromium")
    for name in _NAMES:
        found = shutil.which(name)
        if found:
            return Path(found)
    return None


def ensure_chromium(*, timeout: float = 300.0) -> tuple[Path | None, str]:
    """Return Chromium's path, installing the Debian package ``chromium`` if missing.

    The install runs only as root, under a file lock so that parallel test
    sessions install once; it waits at most ``timeout`` seconds in all.

    Returns:
        ``(path, "")`` when Chromium is usable, else ``(None, reason)``.
    """
    found = find_chromium()
    if found is not None:
        return found, ""
    if os.name != "posix" or os.geteuid() != 0:
        return None, "chromium not installed and not root: run `apt-get install -y chromium`"
    if shutil.which("apt-get") is None:
        return None, "chromium not installed and apt-get not available"
    deadline = time.monotonic() + timeout
    with open(_LOCK, "w") as lock:
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return None, f"timed out after {timeout:.0f} s waiting for a chromium install"
                time.sleep(1.0)
        try:
            found = find_chromium()  # another session may have installed it meanwhile
            if found is not None:
                return found, ""
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            for command in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
                left = deadline - time.monotonic()
                if left <= 0:
                    return None, f"chromium install timed out after {timeout:.0f} s"
                try:
                    done = subprocess.run(
                        command, env=env, capture_output=True, text=True, timeout=left
                    )
                except subprocess.TimeoutExpired:
                    return None, f"`{' '.join(command)}` timed out after {timeout:.0f} s"
                if done.returncode != 0:
                    tail = (done.stderr or done.stdout).strip().splitlines()[-1:]
                    return None, f"`{' '.join(command)}` failed: {' '.join(tail)}"
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    found = find_chromium()
    return (found, "") if found else (None, "apt-get installed chromium but it is not on PATH")


@dataclass(frozen=True)
class PageRender:
    """What Chromium made of a page."""

    dom: str
    log: str
    screenshot: Path | None


def _run(chromium: Path, args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="transmri-chromium-") as profile:
        return subprocess.run(
            [str(chromium), *_FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def render_page(
    chromium: Path,
    page: Path,
    *,
    screenshot: Path | None = None,
    window_size: tuple[int, int] = (1280, 2000),
    timeout: float = 120.0,
) -> PageRender:
    """Load ``page`` in headless Chromium; return its DOM, its log and a screenshot.

    Raises:
        RuntimeError: Chromium exits with an error or prints no DOM.
    """
    url = page.resolve().as_uri()
    size = f"--window-size={window_size[0]},{window_size[1]}"
    dumped = _run(chromium, [size, "--dump-dom", url], timeout)
    if dumped.returncode != 0 or "<html" not in dumped.stdout:
        raise RuntimeError(
            f"chromium --dump-dom {url}: exit {dumped.returncode}, stderr {dumped.stderr[-2000:]}"
        )
    log = dumped.stderr
    if screenshot is not None:
        shot = _run(chromium, [size, f"--screenshot={screenshot}", url], timeout)
        log += shot.stderr
        if shot.returncode != 0 or not screenshot.is_file():
            raise RuntimeError(
                f"chromium --screenshot {url}: exit {shot.returncode}, stderr {shot.stderr[-2000:]}"
            )
    return PageRender(dom=dumped.stdout, log=log, screenshot=screenshot)


def console_messages(log: str) -> list[str]:
    """The page's console lines in a Chromium stderr log (any level, and uncaught errors)."""
    return [
        line
        for line in log.splitlines()
        if re.search(r":CONSOLE(:|\()", line) or "Uncaught" in line
    ]


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk.

    Raises:
        ValueError: ``data`` is not a PNG.
    """
    if not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        raise ValueError(f"not a PNG: starts with {data[:16]!r}")
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


_IMG = re.compile(r"<img\b[^>]*?\bsrc=\"([^\"]*)\"", re.IGNORECASE)


def data_uri_images(dom: str) -> list[tuple[str, bytes | None]]:
    """Every ``<img src=...>``: ``(src prefix, PNG bytes, or None if not a PNG data URI)``."""
    found: list[tuple[str, bytes | None]] = []
    for src in _IMG.findall(dom):
        prefix = "data:image/png;base64,"
        if src.startswith(prefix):
            found.append((src[:40], base64.b64decode(src[len(prefix) :], validate=True)))
        else:
            found.append((src[:80], None))
    return found


def external_references(dom: str) -> list[str]:
    """``src``/``href``/``url(...)`` values pointing outside the page (http, https, //, file)."""
    pattern = (
        r"(?:src|href)=\"((?:https?:|//|file:)[^\"]*)\"|url\(\s*['\"]?((?:https?:|//)[^)'\"]*)"
    )
    return [a or b for a, b in re.findall(pattern, dom, re.IGNORECASE)]


def is_blank_png(path: Path) -> bool:
    """True when every pixel of the PNG at ``path`` has the same colour."""
    import matplotlib.image

    pixels = matplotlib.image.imread(path)
    return bool((pixels == pixels.reshape(-1, pixels.shape[-1])[0]).all())
