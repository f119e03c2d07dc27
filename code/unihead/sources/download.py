"""Downloads that are verified, retried, resumed and cached.

A file is fetched into ``<dest>.part``; a broken connection is retried (``retries`` attempts) and
resumes with an HTTP range request where the server allows it. The file takes its final name only
once its checksum matches, so a file under its final name is always a verified one. A cached file
is checked again before use; one that no longer matches is fetched afresh.

torchvision's ``download_url`` neither resumes nor retries, so it does not fit 2 GB archives on a
cluster's shared network; its checksum helpers do not cover sha256.
"""

from __future__ import annotations

import http.client
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from unihead.config import Download
from unihead.data.errors import DownloadError
from unihead.files import cannot_write, file_digest, is_write_failure

CHUNK = 1 << 20
TRANSIENT_HTTP = (408, 425, 429)
"""Client-error statuses that mean 'try again later' (timeout, too early, rate limited): retried like 5xx."""


def _append_from(url: str, part: Path, timeout_s: float) -> None:
    """Fetch ``url`` into ``part``, continuing after the bytes ``part`` already holds."""
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "unihead-prepare"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        resumed = offset and response.status == 206
        expected = response.headers.get("Content-Length")
        written = 0
        with part.open("ab" if resumed else "wb") as handle:
            while chunk := response.read(CHUNK):
                handle.write(chunk)
                written += len(chunk)
    if expected is not None and written != int(expected):
        raise ConnectionError(f"connection closed after {written} of {expected} bytes")


def fetch(url: str, dest: Path, *, retries: int, timeout_s: float,
          verify: Callable[[Path], str | None], what: str) -> Path:
    """Download ``url`` to ``dest`` unless ``dest`` is already there and passes ``verify``.

    ``verify(path)`` returns None for a good file and otherwise says what is wrong with it. A bad
    download is not retried (the server would send the same bytes): it raises naming the URL.
    """
    if dest.is_file():
        if verify(dest) is None:
            return dest
        dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    error: Exception | None = None
    for attempt in range(retries):
        try:
            _append_from(url, part, timeout_s)
            break
        except urllib.error.HTTPError as err:
            if err.code == 416 and part.exists() and verify(part) is None:
                part.replace(dest)  # already complete and verified: a run stopped before renaming it
                return dest
            if err.code == 416:
                part.unlink(missing_ok=True)
            elif err.code < 500 and err.code not in TRANSIENT_HTTP:
                raise DownloadError(f"{what}: {url} answered HTTP {err.code} {err.reason}; check the URL in "
                                    "the config (data.official)") from err
            error = err
        except OSError as err:
            if is_write_failure(err):  # a full disk or a read-only cache: another attempt would fail alike
                raise cannot_write(part, err) from err
            error = err
        except http.client.HTTPException as err:
            error = err
        if attempt + 1 < retries:
            time.sleep(min(2.0**attempt, 30.0))
    else:
        kept = f"; the partial file {part} is kept and the next run resumes it" if part.exists() else ""
        raise DownloadError(f"{what}: could not download {url} after {retries} attempts ({error}); "
                            f"check the network or set a mirror in the config (data.official){kept}")
    problem = verify(part)
    if problem is not None:
        part.unlink()
        raise DownloadError(f"{what}: the file downloaded from {url} {problem}; the download was removed. A "
                            "mirror serving another file, or a corrupted transfer: check the URL and checksum "
                            "in the config (data.official)")
    part.replace(dest)
    return dest


def checksum_verifier(checksum: str) -> Callable[[Path], str | None]:
    algorithm, _, expected = checksum.partition(":")

    def verify(path: Path) -> str | None:
        actual = file_digest(path, algorithm)
        return None if actual == expected else f"has {algorithm} {actual}, expected {expected}"

    return verify


def fetch_verified(download: Download, cache: Path, *, retries: int, timeout_s: float, what: str) -> Path:
    """Fetch one configured archive into ``cache`` (named as in its URL), checked against its checksum."""
    name = download.url.rstrip("/").rsplit("/", 1)[-1]
    return fetch(download.url, cache / name, retries=retries, timeout_s=timeout_s,
                 verify=checksum_verifier(download.checksum), what=what)
