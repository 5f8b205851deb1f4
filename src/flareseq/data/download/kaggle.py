"""The Kaggle BigData Cup 2019 files, through the official Kaggle client.

Credentials stay where the user put them, in the places the official client reads:
``KAGGLE_USERNAME`` and ``KAGGLE_KEY`` (or ``KAGGLE_API_TOKEN``) in the environment, or
``kaggle.json`` (or ``access_token``) in ``$KAGGLE_CONFIG_DIR`` or ``~/.kaggle``. flareseq
only checks that they are there, before the client is imported (the client authenticates
when imported, and prints and exits when it cannot); it never reads the secret's value
into anything it keeps, logs, writes or passes on.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path

from flareseq.data.download.http import (
    PART_SUFFIX,
    progress_enabled,
    safe_member_target,
)
from flareseq.data.limits import (
    ArchiveBudget,
    LimitedStream,
    ReadLimits,
    check_ratio,
    current_limits,
    limit_error,
)
from flareseq.errors import DataFormatError, DownloadError, MissingDependencyError

KAGGLE_COMPETITION = "bigdata2019-flare-prediction"
KAGGLE_FILES = ("fold1Training.json", "fold2Training.json", "fold3Training.json", "testSet.json")
_TOKEN_PAGE = "https://www.kaggle.com/settings (section API)"


def kaggle_config_dir(environ: Mapping[str, str] | None = None, home: str | PathLike[str] | None = None) -> Path:
    """The folder the official client reads ``kaggle.json`` from (same rules as the client)."""
    environ = os.environ if environ is None else environ
    if environ.get("KAGGLE_CONFIG_DIR"):
        return Path(environ["KAGGLE_CONFIG_DIR"])
    home = Path(home) if home is not None else Path.home()
    legacy = home / ".kaggle"
    if sys.platform.startswith("linux") and not legacy.exists():
        return Path(environ.get("XDG_CONFIG_HOME") or home / ".config") / "kaggle"
    return legacy


def find_kaggle_credentials(environ: Mapping[str, str] | None = None, home: str | PathLike[str] | None = None) -> str:
    """Say where the Kaggle credentials are, without reading them into anything kept.

    Returns
    -------
    str : a description of the source (``"environment variables KAGGLE_USERNAME and
        KAGGLE_KEY"`` or the file's path), never a value.

    Raises
    ------
    DownloadError : none found, or only half of a pair, or an unreadable ``kaggle.json``;
        the message says where to put them.
    """
    environ = os.environ if environ is None else environ
    config_dir = kaggle_config_dir(environ, home)
    has_user, has_key = bool(environ.get("KAGGLE_USERNAME")), bool(environ.get("KAGGLE_KEY"))
    if has_user and has_key:
        return "environment variables KAGGLE_USERNAME and KAGGLE_KEY"
    if environ.get("KAGGLE_API_TOKEN"):
        return "environment variable KAGGLE_API_TOKEN"
    config = config_dir / "kaggle.json"
    if config.is_file():
        try:
            content = json.loads(config.read_text())
        except (OSError, ValueError):
            content = None
        names = set(content) if isinstance(content, dict) else None
        if names is not None and {"username", "key"} <= names:
            return str(config)
        # Only the key names are shown: the values are secrets.
        found = "not a JSON object" if names is None else f"the keys {sorted(names)}"
        raise DownloadError(
            f"{config}: expected a JSON object with \"username\" and \"key\", found {found}. "
            f"Download a fresh kaggle.json from {_TOKEN_PAGE} and replace this file."
        )
    if (config_dir / "access_token").is_file():
        return str(config_dir / "access_token")
    half = ""
    if has_user != has_key:
        present, absent = ("KAGGLE_USERNAME", "KAGGLE_KEY") if has_user else ("KAGGLE_KEY", "KAGGLE_USERNAME")
        half = f" ({present} is set but {absent} is not)"
    raise DownloadError(
        "no Kaggle API credentials found: expected the environment variables KAGGLE_USERNAME and "
        f"KAGGLE_KEY{half}, or the file {config} with {{\"username\": ..., \"key\": ...}}. Create an "
        f"API token at {_TOKEN_PAGE}, then either save the kaggle.json it gives you as {config} "
        "(chmod 600; set KAGGLE_CONFIG_DIR to use another folder) or export KAGGLE_USERNAME and "
        "KAGGLE_KEY. flareseq never stores, logs or passes on these credentials. You must also "
        "accept the competition's rules on its Kaggle page once."
    )


def extract_zip(
    archive: str | PathLike[str], dest: str | PathLike[str], *, progress: bool | None = None,
    limits: ReadLimits | None = None, budget: ArchiveBudget | None = None,
) -> list[Path]:
    """Extract a zip into ``dest``, refusing members that would land outside it.

    Each member is written to ``<name>.part`` and renamed when whole (zipfile checks its
    CRC as it reads), so an interrupted extraction leaves no complete-looking file. The sizes
    the archive declares are checked against ``limits`` before anything is written, and the
    bytes that come out are counted as they are written (against ``budget`` too, the running
    total of a download's archives): a member that expands too much (a bomb) stops the
    extraction and every file and folder it had written is removed.
    """
    from tqdm.auto import tqdm

    limits = current_limits(limits)
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    size = archive.stat().st_size
    written: list[Path] = []
    made: list[Path] = []  # folders this extraction created (removed again on failure)
    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            targets = [safe_member_target(archive, m.filename, dest) for m in members]  # all checked first
            _check_declared_sizes(archive, members, size, limits)
            with tqdm(total=sum(m.file_size for m in members), unit="B", unit_scale=True, unit_divisor=1024,
                      desc=f"unzip {archive.name}", disable=not progress_enabled(progress),
                      file=sys.stderr, leave=False) as bar:
                for member, target in zip(members, targets):
                    folder = target if member.is_dir() else target.parent
                    made.extend(_make_folders(folder))
                    if member.is_dir():
                        continue
                    part = target.with_name(target.name + PART_SUFFIX)
                    try:
                        with LimitedStream(zf.open(member), name=f"{archive}:{member.filename}", limits=limits,
                                           compressed=min(member.compress_size, size), budget=budget,
                                           expected="a complete zip archive",
                                           hint="Delete it and run the download again (with --force).") as src, \
                                open(part, "wb") as out:
                            while chunk := src.read(1 << 20):
                                out.write(chunk)
                                bar.update(len(chunk))
                    except BaseException:
                        part.unlink(missing_ok=True)
                        raise
                    os.replace(part, target)
                    written.append(target)
    except BaseException as exc:
        for path in reversed(written):  # a refused or failed extraction leaves nothing of its own
            path.unlink(missing_ok=True)
        for folder in reversed(made):
            with contextlib.suppress(OSError):
                folder.rmdir()
        if isinstance(exc, (zipfile.BadZipFile, EOFError, zlib.error)):
            raise DataFormatError(
                archive, expected="a complete zip archive", found=f"{type(exc).__name__}: {exc}",
                hint="Delete it and run the download again (with --force).",
            ) from None
        if isinstance(exc, OSError):  # writing: disk full, read-only destination
            raise DownloadError(f"cannot extract {archive.name} into {dest}: {exc.strerror or exc}. Free some "
                                "space (or choose another --dest) and run again; nothing was left half-extracted."
                                ) from None
        raise
    return written


def _check_declared_sizes(archive: Path, members: list[zipfile.ZipInfo], size: int, limits: ReadLimits) -> None:
    """Refuse, before writing anything, a zip whose own header promises a bomb."""
    for m in members:
        if m.file_size > limits.max_member_bytes:
            raise limit_error(f"{archive}:{m.filename}", limit_name="max_member_bytes",
                              expected=f"a member of at most {limits.max_member_bytes:,} bytes",
                              found=f"one that declares {m.file_size:,} bytes")
    total = sum(m.file_size for m in members)
    if total > limits.max_total_bytes:
        raise limit_error(str(archive), limit_name="max_total_bytes",
                          expected=f"an archive expanding to at most {limits.max_total_bytes:,} bytes",
                          found=f"one that declares {total:,} bytes")
    check_ratio(str(archive), total, size, limits)


def _make_folders(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; return the ones created, outermost first."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        path.mkdir()
    return list(reversed(missing))


# A zip inside a zip is unpacked (Kaggle zips each large file, and the bundle is itself a zip):
# two levels in the real download. Deeper nesting is a bomb's trick (42.zip), not data.
MAX_NESTED_ARCHIVES = 3


def unpack_kaggle_archives(
    dest: str | PathLike[str], *, keep_archives: bool = False, progress: bool | None = None,
    limits: ReadLimits | None = None,
) -> None:
    """Unzip every zip under ``dest``, including zips inside zips (Kaggle zips large files
    one by one, and the competition bundle is itself a zip); delete each once extracted
    unless ``keep_archives``. Everything extracted counts against one budget: at most
    ``limits.max_total_bytes`` and ``limits.max_ratio`` times the bytes downloaded, at most
    :data:`MAX_NESTED_ARCHIVES` levels of zips in zips."""
    limits = current_limits(limits)
    dest = Path(dest)
    done: set[Path] = set()
    pending = sorted(dest.rglob("*.zip"))
    budget = ArchiveBudget(str(dest), limits, compressed_bytes=sum(p.stat().st_size for p in pending))
    for level in range(MAX_NESTED_ARCHIVES + 1):
        if not pending:
            return
        if level == MAX_NESTED_ARCHIVES:
            raise limit_error(str(pending[0]), limit_name="nesting", expected=f"at most {MAX_NESTED_ARCHIVES} "
                              "levels of zips inside zips (the Kaggle download has 2)",
                              found="a deeper one (an archive bomb?)")
        for archive in pending:
            extract_zip(archive, archive.parent, progress=progress, limits=limits, budget=budget)
            done.add(archive)
            if not keep_archives:
                archive.unlink()
        pending = sorted(p for p in dest.rglob("*.zip") if p not in done)


def check_kaggle_files(dest: str | PathLike[str], names: Sequence[str] = KAGGLE_FILES) -> dict[str, Path]:
    """Find the competition's files under ``dest`` and move them to its top level.

    Raises
    ------
    DownloadError : naming the missing files and listing what ``dest`` holds.
    """
    dest = Path(dest)
    found, missing = {}, []
    for name in names:
        top = dest / name
        if not top.is_file():
            deeper = sorted(p for p in dest.rglob(name) if p.is_file())
            if len(deeper) == 1:
                os.replace(deeper[0], top)  # one flat folder: `flareseq ingest DIR/*.json` finds them
        if top.is_file():
            found[name] = top
        else:
            missing.append(name)
    if missing:
        present = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
        listing = ", ".join(present[:20]) + (f" and {len(present) - 20} more" if len(present) > 20 else "")
        raise DownloadError(
            f"{dest}: expected the competition files {', '.join(names)}; missing {', '.join(missing)}. "
            f"Found: {listing or 'nothing'}. Run `flareseq download kaggle --dest {dest} --force` to "
            f"download them again."
        )
    return found


def _kaggle_api():
    try:
        from kaggle.api.kaggle_api_extended import KaggleApi
    except ImportError as exc:
        if exc.name and exc.name.split(".")[0] == "kaggle":
            raise MissingDependencyError("kaggle", "kaggle", "Downloading the Kaggle BigData Cup data") from None
        raise
    api = KaggleApi()
    try:
        api.authenticate()
    except SystemExit:  # the client exits (after printing help) when authentication fails
        raise DownloadError(
            "the Kaggle client could not authenticate with the credentials found; create a new API "
            f"token at {_TOKEN_PAGE} and replace the old one."
        ) from None
    return api


def download_kaggle(
    dest: str | PathLike[str],
    *,
    competition: str = KAGGLE_COMPETITION,
    force: bool = False,
    keep_archives: bool = False,
    progress: bool | None = None,
    limits: ReadLimits | None = None,
) -> dict[str, Path]:
    """Download the BigData Cup 2019 files with the official Kaggle client, unzip and check them.

    Parameters
    ----------
    dest : the folder that receives ``fold1Training.json``, ``fold2Training.json``,
        ``fold3Training.json`` and ``testSet.json`` (about 13 GB unzipped).
    competition : the competition's slug on Kaggle.
    force : download again even if the four files are already there.
    keep_archives : keep the downloaded zips after extraction.
    progress : progress bars on stderr; ``None`` shows them only on a terminal.
    limits : caps on what the zips may expand to (:mod:`flareseq.data.limits`).

    Returns
    -------
    dict : file name -> path of each expected file.
    """
    dest = Path(dest)
    if not force and all((dest / name).is_file() for name in KAGGLE_FILES):
        return check_kaggle_files(dest)
    find_kaggle_credentials()
    dest.mkdir(parents=True, exist_ok=True)
    # The client prints to stdout; keep stdout for flareseq's own output.
    with contextlib.redirect_stdout(sys.stderr):
        api = _kaggle_api()
        try:
            api.competition_download_files(competition, path=str(dest), force=force,
                                           quiet=not progress_enabled(progress))
        except Exception as exc:  # the client raises requests' errors and its own, untyped
            raise _client_error(exc, competition) from None
    unpack_kaggle_archives(dest, keep_archives=keep_archives, progress=progress, limits=limits)
    return check_kaggle_files(dest)


def _client_error(exc: Exception, competition: str) -> DownloadError:
    status = getattr(getattr(exc, "response", None), "status_code", None)
    page = f"https://www.kaggle.com/competitions/{competition}"
    hints = {
        401: "Kaggle rejected the credentials: create a new API token and replace the old one.",
        403: f"Kaggle refused access: accept the competition's rules at {page}/rules (once, signed in).",
        404: f"there is no competition {competition!r} on Kaggle (check --competition).",
    }
    if status in hints:
        return DownloadError(f"downloading {competition!r} failed (HTTP {status}): {hints[status]}")
    hint = " Check the internet connection and run again." if "Connection" in type(exc).__name__ else ""
    return DownloadError(
        f"downloading {competition!r} with the Kaggle client failed: {type(exc).__name__}: {exc}.{hint}"
    )
