"""SWAN-SF from Harvard Dataverse: file list, partition archives, safe extraction.

The dataset (doi:10.7910/DVN/EBCFKM) publishes one archive per partition
(``partition1_instances.tar.gz`` ... ``partition5_instances.tar.gz``), each holding
``partitionN/FL/*.csv`` and ``partitionN/NF/*.csv``. Two endpoints of the Dataverse APIs
are used, both without credentials:

- native API ``GET {base}/api/datasets/:persistentId/?persistentId={doi}``: JSON whose
  ``data.latestVersion.files[].dataFile`` carries ``id``, ``filename``, ``filesize`` and
  ``checksum {type, value}`` (older installations: ``md5``);
- data access API ``GET {base}/api/access/datafile/{id}``: the file's bytes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path, PurePosixPath

from flareseq.data.download.http import (
    RETRY_STATUSES,
    Checksum,
    _user_agent,
    download_file,
    progress_enabled,
    safe_member_target,
)
from flareseq.data.limits import (
    ReadLimits,
    clip,
    current_limits,
    limit_error,
    open_decompressed,
    shorten,
)
from flareseq.errors import ConfigError, DataFormatError, DownloadError, FlareseqWarning

DEFAULT_DATAVERSE_URL = "https://dataverse.harvard.edu"
DATAVERSE_URL_ENV = "FLARESEQ_DATAVERSE_URL"
SWAN_SF_DOI = "doi:10.7910/DVN/EBCFKM"
SWAN_SF_PARTITIONS = (1, 2, 3, 4, 5)
# Where a finished extraction is recorded, so a rerun skips both download and extraction
# even after the archive was deleted to save disk.
MARKER_DIR = ".flareseq-downloads"
_PARTITION_NAME = re.compile(r"partition[ _-]?(\d+)", re.IGNORECASE)
_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")


@dataclass(frozen=True)
class DataverseFile:
    """One file of a Dataverse dataset, as the native API lists it."""

    id: int
    filename: str
    size: int | None
    checksum: Checksum | None

    def access_url(self, base_url: str) -> str:
        return f"{base_url}/api/access/datafile/{self.id}"


@dataclass(frozen=True)
class ExtractedArchive:
    """What one archive put into the destination: its top-level entries and file count."""

    archive: str
    paths: tuple[Path, ...]
    n_files: int


def resolve_base_url(base_url: str | None = None) -> str:
    """The Dataverse installation: the argument, else ``$FLARESEQ_DATAVERSE_URL``, else Harvard's."""
    source = "--base-url"
    if not base_url:
        base_url, source = os.environ.get(DATAVERSE_URL_ENV), DATAVERSE_URL_ENV
    if not base_url:
        return DEFAULT_DATAVERSE_URL
    parsed = urllib.parse.urlparse(base_url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(
            f"{source}: expected an http(s) URL such as {DEFAULT_DATAVERSE_URL}, found {base_url!r}."
        )
    return base_url.rstrip("/")


def _get_json(url: str, *, timeout: float, retries: int, backoff: float) -> dict:
    request = urllib.request.Request(url, headers={"User-Agent": _user_agent(), "Accept": "application/json"})
    for attempt in range(retries + 1):
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                body = response.read()
            break
        except urllib.error.HTTPError as exc:
            detail = _dataverse_message(exc.read())
            exc.close()
            if exc.code not in RETRY_STATUSES or attempt == retries:
                raise DownloadError(
                    f"{url}: expected the dataset's metadata, the server answered HTTP {exc.code} "
                    f"{exc.reason}{': ' + detail if detail else ''}. Check the DOI and the base URL."
                ) from None
        except (urllib.error.URLError, OSError) as exc:
            if attempt == retries:
                raise DownloadError(
                    f"could not reach {url} after {retries + 1} attempts ({getattr(exc, 'reason', exc)}). "
                    f"Check the network and the base URL (--base-url or ${DATAVERSE_URL_ENV})."
                ) from None
        time.sleep(min(backoff * 2**attempt, 60.0))
    try:
        return json.loads(body)
    except ValueError:
        raise DataFormatError(
            url, expected="a JSON document from the Dataverse native API",
            found=f"{body[:80]!r}", hint="Is the base URL a Dataverse installation?",
        ) from None


def _dataverse_message(body: bytes) -> str:
    try:
        return str(json.loads(body).get("message", ""))
    except (ValueError, AttributeError):
        return ""


def list_dataset_files(
    doi: str = SWAN_SF_DOI,
    *,
    base_url: str | None = None,
    timeout: float = 60.0,
    retries: int = 5,
    backoff: float = 1.0,
) -> list[DataverseFile]:
    """The files of the latest version of a Dataverse dataset, with sizes and checksums."""
    base = resolve_base_url(base_url)
    url = f"{base}/api/datasets/:persistentId/?persistentId={urllib.parse.quote(doi, safe=':/')}"
    document = _get_json(url, timeout=timeout, retries=retries, backoff=backoff)
    return parse_dataset_files(document, source=url)


def parse_dataset_files(document: dict, *, source: str = "<dataset JSON>") -> list[DataverseFile]:
    """Read ``data.latestVersion.files[].dataFile`` of a native-API answer (see module doc)."""
    if not isinstance(document, dict) or document.get("status", "OK") != "OK":
        found = _dataverse_message(json.dumps(document).encode()) or repr(document)[:120]
        raise DataFormatError(source, field="status", expected='"OK"', found=found)
    try:
        entries = document["data"]["latestVersion"]["files"]
    except (KeyError, TypeError):
        raise DataFormatError(
            source, field="data.latestVersion.files", expected="the dataset's list of files",
            found=f"keys {sorted(document.get('data', {}) or {})} under 'data'",
        ) from None
    files = []
    for i, entry in enumerate(entries):
        field = f"data.latestVersion.files[{i}].dataFile"
        info = entry.get("dataFile") if isinstance(entry, dict) else None
        if not isinstance(info, dict) or "id" not in info or "filename" not in info:
            raise DataFormatError(source, field=field, expected="an object with 'id' and 'filename'",
                                  found=repr(entry)[:120])
        checksum = None
        if isinstance(info.get("checksum"), dict) and info["checksum"].get("value"):
            checksum = Checksum(str(info["checksum"].get("type", "MD5")), str(info["checksum"]["value"]))
        elif info.get("md5"):
            checksum = Checksum("MD5", str(info["md5"]))
        size = info.get("filesize")
        files.append(DataverseFile(int(info["id"]), str(info["filename"]), int(size) if size is not None else None,
                                   checksum))
    return files


def select_partition_files(files: Sequence[DataverseFile], partitions: Iterable[int]) -> dict[int, DataverseFile]:
    """Map SWAN-SF partition numbers to their archives (``partition<N>...tar.gz``) by name."""
    partitions = list(dict.fromkeys(partitions))
    bad = [p for p in partitions if p not in SWAN_SF_PARTITIONS]
    if bad:
        raise ConfigError(f"partitions: expected numbers among {list(SWAN_SF_PARTITIONS)}, found {bad}.")
    by_partition: dict[int, list[DataverseFile]] = {}
    for f in files:
        match = _PARTITION_NAME.search(f.filename)
        if match and f.filename.lower().endswith(_ARCHIVE_SUFFIXES):
            by_partition.setdefault(int(match.group(1)), []).append(f)
    chosen = {}
    listing = ", ".join(sorted(f.filename for f in files)) or "no files"
    for p in partitions:
        candidates = by_partition.get(p, [])
        if len(candidates) != 1:
            found = "no archive" if not candidates else f"{len(candidates)} archives"
            raise DownloadError(
                f"partition {p}: expected one archive named like 'partition{p}_instances.tar.gz' in "
                f"the dataset, found {found}. The dataset has: {listing}. If the publisher renamed "
                f"the files, download them by hand from the dataset page."
            )
        chosen[p] = candidates[0]
    return chosen


def extract_tar(
    archive: str | PathLike[str], dest: str | PathLike[str], *, progress: bool | None = None,
    limits: ReadLimits | None = None,
) -> ExtractedArchive:
    """Extract a (gzipped) tar into ``dest``, refusing members that would land outside it.

    The archive is streamed (constant memory, one pass) into a hidden staging folder inside
    ``dest``; only when every member is out are its top-level entries moved into place,
    so an interrupted or refused extraction leaves nothing that looks complete. It is
    decompressed under ``limits`` (:mod:`flareseq.data.limits`): an archive that expands
    too much for its size (a bomb) or beyond ``max_total_bytes`` stops, and what it had
    written is removed.
    """
    from tqdm.auto import tqdm

    limits = current_limits(limits)
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    staging = dest / f".{archive.name}.extracting"
    shutil.rmtree(staging, ignore_errors=True)  # our own leftover from an interrupted run
    staging.mkdir()
    n_files = 0
    try:
        stream = open_decompressed(archive, limits=limits, expected="a complete tar or tar.gz archive",
                                   hint="Delete the archive and download it again.")
        # the whole tar stream is what the archive expands to
        stream.max_bytes, stream.max_bytes_name = limits.max_total_bytes, "max_total_bytes"
        try:
            with stream, tqdm(total=archive.stat().st_size, unit="B", unit_scale=True, desc=f"extract {archive.name}",
                              disable=not progress_enabled(progress), file=sys.stderr, leave=False) as bar, \
                    tarfile.open(fileobj=stream, mode="r|") as tar:
                for member in tar:
                    _check_member(archive, member, staging, limits)
                    tar.extract(member, staging, filter="data")
                    n_files += member.isfile()
                    bar.update(stream.compressed_bytes - bar.n)
        except tarfile.TarError as exc:
            found = str(exc) if isinstance(exc, tarfile.FilterError) else f"{type(exc).__name__}: {exc}"
            raise DataFormatError(
                archive, expected="a complete tar or tar.gz archive", found=shorten(found, 200),
                hint="Delete the archive and download it again.",
            ) from None
        except OSError as exc:  # writing: disk full, read-only destination
            raise DownloadError(f"cannot extract {archive.name} into {dest}: {exc.strerror or exc}. Free some space "
                                "(or choose another --dest) and run again; nothing was left half-extracted.") from None
        moved = [(entry, dest / entry.name) for entry in sorted(staging.iterdir())]
        for _, target in moved:
            if target.exists() or target.is_symlink():
                raise DownloadError(
                    f"{target} already exists; extracting {archive.name} would overwrite it. Remove it "
                    f"(or choose another destination) and run again; {archive} was kept."
                )
        for entry, target in moved:
            os.replace(entry, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExtractedArchive(archive.name, tuple(t for _, t in moved), n_files)


def _check_member(archive: Path, member: tarfile.TarInfo, root: Path, limits: ReadLimits) -> None:
    safe_member_target(archive, member.name, root)
    if member.size > limits.max_member_bytes:
        raise limit_error(f"{archive}:{shorten(member.name, 200)}", limit_name="max_member_bytes",
                          expected=f"a member of at most {limits.max_member_bytes:,} bytes",
                          found=f"one of {member.size:,} bytes")
    if member.issym():
        safe_member_target(archive, str(Path(member.name).parent / member.linkname), root)
    elif member.islnk():
        safe_member_target(archive, member.linkname, root)
    elif not (member.isfile() or member.isdir()):
        raise DataFormatError(archive, field=member.name, expected="a regular file or folder",
                              found="a device or pipe", hint="Delete the archive and download it again.")


def check_server_filename(filename: str, dest: Path) -> None:
    """Refuse a file name from the server that is not one plain name inside ``dest``.

    The name comes from the server's JSON; joined to ``dest`` unchecked, ``../../x`` or
    ``/etc/x`` would be written (and later deleted) outside the destination folder.
    """
    pure = PurePosixPath(filename)
    plain = (isinstance(filename, str) and filename not in ("", ".", "..") and "/" not in filename
             and "\\" not in filename and not any(ord(c) < 32 for c in filename)
             and len(filename.encode("utf-8", "surrogatepass")) <= 255 and pure.name == filename)
    if not plain:
        raise DownloadError(
            f"the server lists a file named {clip(filename)}: expected a plain file name; a name with a folder "
            f"part, '..', an absolute path or control characters would be written outside --dest ({dest}). "
            "Nothing was downloaded. Check --base-url: this server is misconfigured or hostile."
        )
    for name in (filename, filename + ".part"):
        if (dest / name).is_symlink():
            raise DownloadError(
                f"{dest / name} is a symbolic link; downloading {clip(filename)} would write through it, possibly "
                "outside --dest. Remove the link (or choose another --dest) and run again."
            )


def _marker(dest: Path, file: DataverseFile) -> Path:
    return dest / MARKER_DIR / f"{file.filename}.json"


def _already_extracted(dest: Path, file: DataverseFile) -> ExtractedArchive | None:
    try:
        record = json.loads(_marker(dest, file).read_text())
    except (OSError, ValueError):
        return None
    paths = tuple(dest / name for name in record.get("paths", []))
    same = record.get("checksum") == (str(file.checksum) if file.checksum else None)
    if same and paths and all(p.exists() for p in paths):
        return ExtractedArchive(file.filename, paths, int(record.get("n_files", 0)))
    return None


def download_swan_sf(
    dest: str | PathLike[str],
    partitions: Iterable[int] = SWAN_SF_PARTITIONS,
    *,
    base_url: str | None = None,
    doi: str = SWAN_SF_DOI,
    keep_archives: bool = False,
    retries: int = 5,
    backoff: float = 1.0,
    timeout: float = 60.0,
    progress: bool | None = None,
    limits: ReadLimits | None = None,
) -> dict[int, ExtractedArchive]:
    """Download SWAN-SF partitions from Dataverse, verify their checksums and extract them.

    Parameters
    ----------
    dest : the folder that receives ``partition<N>/FL/*.csv`` and ``partition<N>/NF/*.csv``.
    partitions : which of the five partitions (disjoint in time) to fetch.
    base_url : the Dataverse installation; default ``$FLARESEQ_DATAVERSE_URL`` or Harvard's.
    doi : the dataset's persistent identifier.
    keep_archives : keep each ``.tar.gz`` after extraction (by default it is deleted once
        its contents are in place, as the partitions take several GB each).
    retries, backoff, timeout, progress : see :func:`~flareseq.data.download.http.download_file`.
    limits : caps on what an archive may expand to (:mod:`flareseq.data.limits`).

    Returns
    -------
    dict : partition number -> :class:`ExtractedArchive`. Partitions already extracted by
    an earlier run (recorded in ``dest/.flareseq-downloads/``) are not fetched again.
    """
    dest = Path(dest)
    base = resolve_base_url(base_url)
    chosen = select_partition_files(
        list_dataset_files(doi, base_url=base, timeout=timeout, retries=retries, backoff=backoff), partitions
    )
    for file in chosen.values():  # the server names the files: nothing it says may leave dest
        check_server_filename(file.filename, dest)
    results = {}
    for partition, file in chosen.items():
        done = _already_extracted(dest, file)
        if done is not None:
            results[partition] = done
            continue
        if file.checksum is None:
            warnings.warn(f"{file.filename}: the dataset publishes no checksum; only its size is checked.",
                          FlareseqWarning, stacklevel=2)
        dest.mkdir(parents=True, exist_ok=True)
        # Fail before hours of transfer, not after: the missing bytes must fit.
        have = sum(p.stat().st_size for p in (dest / file.filename, dest / f"{file.filename}.part") if p.exists())
        free = shutil.disk_usage(dest).free
        if file.size is not None and free < file.size - have:
            raise DownloadError(
                f"{file.filename} needs {file.size - have:,} more bytes (and about as much again to "
                f"extract) but {dest} has {free:,} free. Free some space or choose another --dest."
            )
        archive = download_file(
            file.access_url(base), dest / file.filename, checksum=file.checksum, size=file.size,
            retries=retries, backoff=backoff, timeout=timeout, progress=progress,
        )
        extracted = extract_tar(archive, dest, progress=progress, limits=limits)
        marker = _marker(dest, file)
        if marker.parent.is_symlink():
            raise DownloadError(f"{marker.parent} is a symbolic link; flareseq writes its records of finished "
                                "downloads only into a real folder inside --dest. Remove the link and run again.")
        marker.parent.mkdir(exist_ok=True)
        record = {"checksum": str(file.checksum) if file.checksum else None,
                  "paths": [p.name for p in extracted.paths], "n_files": extracted.n_files}
        marker.write_text(json.dumps(record, indent=1))
        if not keep_archives:
            archive.unlink()
        results[partition] = extracted
    return results
