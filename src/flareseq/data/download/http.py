"""Resumable, checksum-verified HTTP downloads (standard library only).

A transfer writes into ``<name>.part`` beside the destination and asks the server for the
missing tail with an HTTP ``Range`` header, so an interrupted download (a dropped
connection, a killed process) continues where it stopped. Only a file whose size and
checksum match what the publisher announced is renamed, atomically, to its final name:
a file under the final name is always complete. A checksum mismatch deletes the ``.part``
file (resuming from damaged bytes could only reproduce the damage) and raises
:class:`~flareseq.errors.DownloadError` naming the file and both checksums.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from os import PathLike
from pathlib import Path, PurePosixPath

from flareseq.errors import DataFormatError, DownloadError

PART_SUFFIX = ".part"
# Statuses worth another try: the server or a proxy is busy or briefly broken.
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_BACKOFF_S = 60.0
# Publishers name algorithms as Dataverse does ("MD5", "SHA-1", ...); hashlib wants "sha1".
_ALGORITHMS = {"md5": "md5", "sha1": "sha1", "sha256": "sha256", "sha512": "sha512"}


def _user_agent() -> str:
    from flareseq import __version__

    return f"flareseq/{__version__} (+python-urllib)"


@dataclass(frozen=True)
class Checksum:
    """A published checksum: ``algorithm`` as the publisher names it (``"MD5"``) and the hex value."""

    algorithm: str
    value: str

    @property
    def hashlib_name(self) -> str:
        key = self.algorithm.lower().replace("-", "").replace("_", "")
        if key not in _ALGORITHMS:
            raise DownloadError(
                f"checksum algorithm {self.algorithm!r} is not supported; "
                f"expected one of MD5, SHA-1, SHA-256, SHA-512."
            )
        return _ALGORITHMS[key]

    def __str__(self) -> str:
        return f"{self.algorithm} {self.value.lower()}"


def file_checksum(path: str | PathLike[str], algorithm: str = "md5", chunk_size: int = 1 << 20) -> str:
    """Hex digest of a file's bytes, read in chunks (constant memory)."""
    hasher = hashlib.new(Checksum(algorithm, "").hashlib_name)
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            hasher.update(chunk)
    return hasher.hexdigest()


def progress_enabled(progress: bool | None) -> bool:
    """``None`` means: show progress bars only when stderr is a terminal."""
    return sys.stderr.isatty() if progress is None else bool(progress)


class _Transient(Exception):
    """A failure worth retrying; ``progressed`` when the attempt still added bytes."""

    def __init__(self, reason: str, progressed: bool = False) -> None:
        super().__init__(reason)
        self.progressed = progressed


class _PartFile:
    """The ``.part`` file and a running hash of exactly the bytes it holds."""

    def __init__(self, path: Path, algorithm: str | None, total: int | None) -> None:
        self.path = path
        self.algorithm = algorithm
        self.total = total  # the whole file's size, once the publisher or the server said it
        self.size = path.stat().st_size if path.exists() else 0
        self._hasher = None
        self._synced = False  # a resumed prefix is hashed lazily, once: it costs a full read

    def _sync(self) -> None:
        on_disk = self.path.stat().st_size if self.path.exists() else 0
        if self._synced and on_disk == self.size:
            return
        self._hasher = hashlib.new(self.algorithm) if self.algorithm else None
        self.size = 0
        if self.path.exists():
            with open(self.path, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    self._update(chunk)
        self._synced = True

    def _update(self, chunk: bytes) -> None:
        if self._hasher is not None:
            self._hasher.update(chunk)
        self.size += len(chunk)

    def _open(self, mode: str):
        """The part file for writing, never through a symbolic link (it could point anywhere)."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_APPEND if mode == "ab" else os.O_TRUNC)
        try:
            fd = os.open(self.path, flags, 0o644)
        except OSError as exc:
            raise DownloadError(f"cannot write {self.path}: {exc.strerror or exc}"
                                f"{' (it is a symbolic link)' if self.path.is_symlink() else ''}. Remove it "
                                "(or choose another destination) and run again.") from None
        return os.fdopen(fd, mode)

    def truncate(self) -> None:
        with self._open("wb"):
            pass
        self._hasher = hashlib.new(self.algorithm) if self.algorithm else None
        self.size = 0
        self._synced = True

    def append(self, response, chunk_size: int, bar) -> int:
        """Copy the response body to the end of the file; return the bytes received."""
        self._sync()
        received = 0
        with self._open("ab") as fh:
            while chunk := response.read(chunk_size):
                try:
                    fh.write(chunk)
                except OSError as exc:  # a full disk is not a network hiccup: do not retry
                    raise DownloadError(
                        f"cannot write {self.path}: {exc.strerror or exc}. Free some space (or choose "
                        f"another destination) and run again to resume."
                    ) from None
                self._update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
        return received

    def hexdigest(self) -> str:
        self._sync()
        return self._hasher.hexdigest() if self._hasher is not None else ""


def download_file(
    url: str,
    dest: str | PathLike[str],
    *,
    checksum: Checksum | None = None,
    size: int | None = None,
    retries: int = 5,
    backoff: float = 1.0,
    timeout: float = 60.0,
    progress: bool | None = None,
    chunk_size: int = 1 << 20,
) -> Path:
    """Download ``url`` to ``dest``, resuming, retrying and verifying.

    Parameters
    ----------
    url : an ``http(s)`` URL.
    dest : the final path; bytes arrive in ``dest + ".part"`` first.
    checksum : the published checksum; the file is renamed to ``dest`` only if it matches.
    size : the published size in bytes, when known (lets a complete ``.part`` skip the request).
    retries : failed attempts in a row tolerated before giving up; an attempt that added
        bytes before failing resets the count, so a long transfer over a flaky link finishes.
    backoff : seconds before the first retry; doubled on each further one (at most 60 s).
    timeout : seconds a connect or a read may stall.
    progress : show a tqdm bar on stderr; ``None`` shows one only on a terminal.

    Returns
    -------
    Path : ``dest``.

    Raises
    ------
    DownloadError : the server refused (HTTP 4xx), retries ran out (the ``.part`` file is
        kept to resume), or size/checksum do not match (the ``.part`` file is deleted).
    """
    from tqdm.auto import tqdm

    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise DownloadError(
            f"{url!r} is not a valid download URL; expected one starting with http:// or https://."
        )
    dest = Path(dest)
    for path in (dest, dest.with_name(dest.name + PART_SUFFIX)):
        if path.is_symlink():  # writing or renaming through it could land anywhere
            raise DownloadError(f"{path} is a symbolic link; flareseq downloads only into real files. Remove the "
                                "link (or choose another destination) and run again.")
    if dest.exists():
        _check_existing(dest, url, checksum)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = _PartFile(dest.with_name(dest.name + PART_SUFFIX), checksum.hashlib_name if checksum else None, size)
    failures = 0
    with tqdm(
        total=size, initial=part.size, unit="B", unit_scale=True, unit_divisor=1024,
        desc=dest.name, disable=not progress_enabled(progress), file=sys.stderr, leave=False,
    ) as bar:
        while True:
            try:
                _attempt(url, part, timeout, chunk_size, bar)
                break
            except _Transient as exc:
                failures = 0 if exc.progressed else failures + 1
                if failures > retries:
                    raise DownloadError(
                        f"could not download {url} to {dest}: {failures} attempts in a row failed, "
                        f"the last with: {exc}. The {part.size:,} bytes received so far are kept in "
                        f"{part.path}; run the same command again to resume."
                    ) from None
                time.sleep(min(backoff * 2 ** max(failures - 1, 0), MAX_BACKOFF_S))
    _verify(part, dest, url, checksum)
    os.replace(part.path, dest)  # atomic on one file system: no half file under the final name
    return dest


def _check_existing(dest: Path, url: str, checksum: Checksum | None) -> None:
    if checksum is None:
        return
    found = file_checksum(dest, checksum.hashlib_name)
    if found != checksum.value.lower():
        # Not ours to delete: it may be the user's file that happens to share the name.
        raise DownloadError(
            f"{dest} already exists but is not the published file ({url}): expected "
            f"{checksum}, found {checksum.algorithm} {found}. Move or delete it and run again."
        )


def _attempt(url: str, part: _PartFile, timeout: float, chunk_size: int, bar) -> None:
    """One request for the missing bytes; returns when the part file is whole."""
    size = part.total
    if size is not None and part.size > size:
        part.truncate()  # longer than the published file: cannot be a prefix of it
    offset = part.size
    if size is not None and offset == size:
        return  # already complete on disk (e.g. interrupted between transfer and rename)
    request = urllib.request.Request(url, headers={"User-Agent": _user_agent(), "Accept-Encoding": "identity"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset:
            total = _range_total(exc.headers.get("Content-Range"))
            if total == offset:
                part.total = total
                return  # the part already holds the whole file
            part.truncate()
            bar.reset(total=size)
            raise _Transient(f"the server refused to resume at byte {offset:,} (HTTP 416); restarting") from None
        if exc.code in RETRY_STATUSES:
            raise _Transient(f"HTTP {exc.code} {exc.reason}") from None
        hint = " Check the URL (and --base-url)." if exc.code == 404 else ""
        raise DownloadError(
            f"{url}: expected the file, the server answered HTTP {exc.code} {exc.reason}.{hint}"
        ) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise _Transient(f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}") from None

    with response:
        length = response.headers.get("Content-Length")
        total = None
        if response.status == 206:
            start = _range_start(response.headers.get("Content-Range"))
            total = _range_total(response.headers.get("Content-Range"))
            if start != offset:
                part.truncate()
                bar.reset(total=size)
                raise _Transient(f"asked for bytes from {offset:,}, the server sent from {start}; starting over")
        elif response.status == 200:
            if offset:
                part.truncate()  # the server ignored Range and sends the whole file: start over
                bar.reset(total=size)
            total = int(length) if length is not None else None
        else:
            raise DownloadError(f"{url}: expected HTTP 200 or 206, the server answered {response.status}.")
        if size is None and total is not None:
            part.total = total
            bar.total = total
            bar.refresh()
        start_size = part.size
        try:
            received = part.append(response, chunk_size, bar)
        except (OSError, http.client.HTTPException) as exc:
            got = part.size - start_size
            raise _Transient(
                f"connection lost after {got:,} bytes ({type(exc).__name__})", progressed=got > 0
            ) from None
    if length is not None and received < int(length):
        raise _Transient(
            f"connection closed after {received:,} of {int(length):,} bytes", progressed=received > 0
        )


def _range_start(header: str | None) -> int | None:
    match = re.match(r"bytes\s+(\d+)-\d+/(\d+|\*)", header or "")
    return int(match.group(1)) if match else None


def _range_total(header: str | None) -> int | None:
    match = re.match(r"bytes\s+(?:\d+-\d+|\*)/(\d+)", header or "")
    return int(match.group(1)) if match else None


def _verify(part: _PartFile, dest: Path, url: str, checksum: Checksum | None) -> None:
    size = part.total
    if size is not None and part.size != size:
        found = part.size
        part.path.unlink(missing_ok=True)
        raise DownloadError(
            f"{dest.name}: expected {size:,} bytes, downloaded {found:,} (from {url}). The damaged "
            f"download was deleted; run the command again to fetch it afresh."
        )
    if checksum is None:
        return
    found = part.hexdigest()
    if found != checksum.value.lower():
        part.path.unlink(missing_ok=True)
        raise DownloadError(
            f"{dest.name}: checksum mismatch: the publisher lists {checksum}, the downloaded file has "
            f"{checksum.algorithm} {found} (from {url}). The damaged download was deleted and nothing "
            f"was saved as {dest}; run the command again to fetch it afresh (if it fails again, the "
            f"server's copy differs from the published checksum: tell the publisher)."
        )


def safe_member_target(archive: str | PathLike[str], name: str, root: Path) -> Path:
    """Where archive member ``name`` goes under ``root``; refuses paths that would escape it.

    A hostile or broken archive can hold ``../x`` or ``/etc/x`` ("path traversal");
    extracting it would write outside the destination folder.
    """
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts or re.match(r"^[A-Za-z]:", name):
        raise DataFormatError(
            archive, field=name, expected="a relative path inside the archive",
            found=f"a path that leaves the destination folder ({name!r})",
            hint="The archive is damaged or hostile: nothing outside the destination was written; "
            "delete the archive and download it again.",
        )
    target = (root / pure).resolve()
    if not target.is_relative_to(root.resolve()):
        raise DataFormatError(
            archive, field=name, expected="a path inside the destination folder",
            found=f"{target}", hint="Delete the archive and download it again.",
        )
    return target
