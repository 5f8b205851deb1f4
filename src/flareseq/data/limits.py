"""Limits on what one input may make flareseq read: archive bombs, endless files, huge lines.

Every archive member and compressed stream is read through :class:`LimitedStream`, which
counts the bytes that come out and stops with a :class:`LimitError` (a
:class:`~flareseq.errors.DataFormatError`, so the CLI prints it as one paragraph and exits 2)
when one of the :class:`ReadLimits` is passed. Nothing is read whole: a 1 MB zip that
expands to 1 GiB is refused after a few MB, in constant memory.

The defaults are chosen from the real data (SPEC section 1): the largest Kaggle file
(``testSet.json``) is ~6 GB of JSON in one member, a SWAN-SF partition is several GB of
~40 KB sample files, and both compress 2-4x with gzip/deflate. So sizes get a wide margin
(64 GiB per member, 1 TiB per archive) and it is the *ratio* that stops bombs: more than
100 bytes out per compressed byte (real data: under 5; gzip's ceiling is ~1,030) once 16 MiB
have come out. Lines and sample files have their own caps (16 MiB each, against ~40 KB in
the real data), so one endless line or file cannot fill the memory.

Change them with ``ReadLimits(...)`` (the ``limits=`` argument of the readers, ``ingest``
and the download functions), the environment variable ``FLARESEQ_LIMITS`` (for example
``FLARESEQ_LIMITS="max_ratio=500,max_member_bytes=200G"``; worker processes inherit it) or
the CLI option ``--limit NAME=VALUE``.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import re
import zipfile
import zlib
from dataclasses import dataclass, fields, replace
from os import PathLike

from flareseq.errors import ConfigError, DataFormatError

LIMITS_ENV = "FLARESEQ_LIMITS"
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
# errors a truncated or damaged compressed stream raises while it is read
STREAM_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile, zipfile.BadZipFile, lzma.LZMAError, OSError)


class LimitError(DataFormatError):
    """An input passed one of the :class:`ReadLimits` (an archive bomb, an endless file or
    line); never skipped by ``on_error="skip"`` unless it concerns one record."""


@dataclass(frozen=True)
class ReadLimits:
    """How much one input may make flareseq read (see the module's notes for the defaults).

    Parameters
    ----------
    max_member_bytes : bytes one archive member or decompressed stream may expand to.
    max_total_bytes : bytes all members of one archive (or one download's archives) may
        expand to together.
    max_ratio : expanded bytes per compressed byte, checked once ``ratio_after_bytes``
        have come out (small, very compressible files stay readable).
    ratio_after_bytes : see ``max_ratio``.
    max_sample_bytes : bytes of one SWAN-SF sample file.
    max_line_bytes : bytes of one Kaggle JSON line.
    """

    max_member_bytes: int = 64 << 30
    max_total_bytes: int = 1 << 40
    max_ratio: float = 100.0
    ratio_after_bytes: int = 16 << 20
    max_sample_bytes: int = 16 << 20
    max_line_bytes: int = 16 << 20

    def with_settings(self, settings: str | dict) -> ReadLimits:
        """These limits with ``settings`` (``"name=value,..."`` or a dict) applied; sizes
        take binary suffixes (``64G`` = 64 GiB)."""
        if isinstance(settings, str):
            pairs = [item.split("=", 1) for item in re.split(r"[,\s]+", settings.strip()) if item]
            bad = [item for item in pairs if len(item) != 2]
            if bad:
                raise ConfigError(f"limits: expected NAME=VALUE items separated by commas, found {bad[0][0]!r}.")
            settings = dict(pairs)
        known = {f.name: f.type for f in fields(self)}
        changes = {}
        for name, value in settings.items():
            if name not in known:
                raise ConfigError(f"limits: unknown limit {name!r}; expected one of {sorted(known)}.")
            changes[name] = _parse_value(name, value)
        return replace(self, **changes)

    def describe(self) -> str:
        return ", ".join(f"{f.name}={_show(getattr(self, f.name))}" for f in fields(self))


def _parse_value(name: str, value) -> float | int:
    if name == "max_ratio":
        try:
            ratio = float(value)
        except (TypeError, ValueError):
            ratio = -1.0
        if not ratio >= 1.0:
            raise ConfigError(f"limits: max_ratio expects a number >= 1, found {value!r}.")
        return ratio
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    match = _SIZE.match(str(value))
    if match is None or float(match[1]) <= 0:
        raise ConfigError(f"limits: {name} expects a positive size such as 16M or 64G, found {value!r}.")
    return int(float(match[1]) * _UNITS[match[2].lower()])


def _show(value: float | int) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    for suffix, unit in (("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if value >= unit and value % unit == 0:
            return f"{value // unit}{suffix}"
    return str(value)


def current_limits(limits: ReadLimits | None = None) -> ReadLimits:
    """``limits`` when given, else the defaults changed by ``$FLARESEQ_LIMITS``."""
    if limits is not None:
        return limits
    settings = os.environ.get(LIMITS_ENV, "").strip()
    try:
        return ReadLimits().with_settings(settings) if settings else ReadLimits()
    except ConfigError as exc:
        raise ConfigError(f"${LIMITS_ENV}: {exc}") from None


def clip(value: object, limit: int = 80) -> str:
    """``repr(value)`` cut to at most ``limit`` characters: error messages quote input, and a
    hostile input must not make them megabytes long (or overflow ``repr``)."""
    try:
        text = repr(value)
    except (RecursionError, ValueError):  # nested too deep, or an int too long to print
        text = f"<a {type(value).__name__} too deep or too long to show>"
    return shorten(text, limit)


def shorten(text: str, limit: int = 80) -> str:
    """``text`` cut to at most ``limit`` characters."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


_HINT = ("If the input is genuine, raise the limit with --limit {name}=VALUE (or ${env}); "
         "otherwise it is damaged or hostile.")


def limit_error(name: str, *, limit_name: str, expected: str, found: str, line: int | None = None,
                field: str | None = None) -> LimitError:
    return LimitError(name, line=line, field=field, expected=expected, found=found,
                      hint=_HINT.format(name=limit_name, env=LIMITS_ENV))


class ArchiveBudget:
    """What all members of one archive (or one download) have expanded to so far, against
    ``max_total_bytes`` and ``max_ratio``."""

    def __init__(self, name: str, limits: ReadLimits, compressed_bytes: int | None = None) -> None:
        self.name = name
        self.limits = limits
        self.expanded = 0
        self.compressed_bytes = compressed_bytes  # the archive's size, when the ratio is over it

    def add(self, n: int, where: str) -> None:
        self.expanded += n
        if self.expanded > self.limits.max_total_bytes:
            raise limit_error(where, limit_name="max_total_bytes",
                              expected=f"an archive expanding to at most {_show(self.limits.max_total_bytes)} bytes",
                              found=f"more than that from {self.name}")
        if self.compressed_bytes is not None:
            check_ratio(where, self.expanded, self.compressed_bytes, self.limits)


def check_ratio(where: str, expanded: int, compressed: int, limits: ReadLimits) -> None:
    if expanded > limits.ratio_after_bytes and expanded > limits.max_ratio * max(compressed, 1):
        raise limit_error(where, limit_name="max_ratio",
                          expected=f"at most {limits.max_ratio:g} bytes out per compressed byte (real data: under 5)",
                          found=f"{expanded:,} bytes out of {compressed:,} compressed bytes (an archive bomb?)")


class CountingFile:
    """A binary file read through, counting the bytes (the compressed side of a stream)."""

    def __init__(self, raw) -> None:
        self.raw = raw
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.count += len(data)
        return data

    def readinto(self, buffer) -> int:
        n = self.raw.readinto(buffer)
        self.count += n or 0
        return n

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self.raw.close()

    @property
    def closed(self) -> bool:
        return self.raw.closed


class LimitedStream:
    """A decompressed stream read under the limits: bytes counted, ratio checked, damage
    (truncation, bad CRC) turned into a :class:`~flareseq.errors.DataFormatError`.

    Parameters
    ----------
    stream : the decompressed binary stream.
    name : shown in errors (``archive.zip:member``).
    compressed : ``() -> int``, compressed bytes consumed so far (or a fixed size).
    max_bytes : the cap on this stream (``max_member_bytes`` or ``max_sample_bytes``).
    budget : the archive's running total, when the stream is one of several members.
    """

    def __init__(self, stream, *, name: str, limits: ReadLimits, compressed=None, max_bytes: int | None = None,
                 max_bytes_name: str = "max_member_bytes", budget: ArchiveBudget | None = None,
                 closes: tuple = (), expected: str | None = None, hint: str | None = None) -> None:
        self.stream = stream
        self.name = name
        self.limits = limits
        self.compressed = compressed
        self.max_bytes = limits.max_member_bytes if max_bytes is None else max_bytes
        self.max_bytes_name = max_bytes_name
        self.budget = budget
        self.expanded = 0
        self._closes = closes
        self._damaged = {k: v for k, v in (("expected", expected), ("hint", hint)) if v}

    @property
    def compressed_bytes(self) -> int | None:
        if self.compressed is None:
            return None
        return self.compressed() if callable(self.compressed) else int(self.compressed)

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:  # "everything": still in bounded steps
            parts = []
            while block := self.read(1 << 20):
                parts.append(block)
            return b"".join(parts)
        try:
            data = self.stream.read(n)
        except STREAM_ERRORS as exc:
            raise damaged_stream_error(self.name, exc, **self._damaged) from None
        self._count(len(data))
        return data

    def _count(self, n: int) -> None:
        self.expanded += n
        if self.expanded > self.max_bytes:
            raise limit_error(self.name, limit_name=self.max_bytes_name,
                              expected=f"at most {_show(self.max_bytes)} bytes in one file or member",
                              found=f"more than that ({self.expanded:,} bytes read so far)")
        compressed = self.compressed_bytes
        if compressed is not None:
            check_ratio(self.name, self.expanded, compressed, self.limits)
        if self.budget is not None:
            self.budget.add(n, self.name)

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        for handle in (self.stream, *self._closes):
            try:
                handle.close()
            except Exception:  # noqa: BLE001 - closing a damaged stream may complain again
                pass

    def __enter__(self) -> LimitedStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def damaged_stream_error(name: str, exc: BaseException, *, expected: str = "a complete, undamaged compressed stream",
                         hint: str = "Download or copy it again.") -> DataFormatError:
    """A truncated or corrupt compressed stream, as one paragraph."""
    detail = str(exc) or type(exc).__name__
    return DataFormatError(name, expected=expected,
                           found=f"{type(exc).__name__}: {shorten(detail, 120)} (the file is truncated or damaged)",
                           hint=hint)


_MAGIC = (("gzip", b"\x1f\x8b", lambda f: gzip.GzipFile(fileobj=f, mode="rb")),
          ("bzip2", b"BZh", lambda f: bz2.BZ2File(f, "rb")), ("xz", b"\xfd7zXZ\x00", lambda f: lzma.LZMAFile(f, "rb")))


def open_decompressed(path: str | PathLike[str], *, name: str | None = None, limits: ReadLimits | None = None,
                      budget: ArchiveBudget | None = None, require: str | None = None, **damaged) -> LimitedStream:
    """``path`` as a decompressed stream under the limits: gzip, bzip2 or xz by their magic
    bytes, anything else passed through 1:1 (unless ``require`` names the compression the
    file's name promised: then anything else is a :class:`DataFormatError`). ``expected`` and
    ``hint`` (keywords) word the error for a truncated or damaged stream."""
    limits = current_limits(limits)
    name = name or str(path)
    raw = open(path, "rb")  # noqa: SIM115 - closed by the LimitedStream
    try:
        head = raw.read(6)
        raw.seek(0)
    except OSError:
        raw.close()
        raise
    counted = CountingFile(raw)
    for _kind, magic, opener in _MAGIC:
        if head.startswith(magic):
            return LimitedStream(opener(counted), name=name, limits=limits,
                                 compressed=lambda: counted.count, budget=budget, closes=(raw,), **damaged)
    if require is not None:
        raw.close()
        raise DataFormatError(name, expected=f"{require} data (as the file name says)",
                              found=f"a file starting {clip(head, 40)}", hint="Rename or recompress the file.")
    return LimitedStream(counted, name=name, limits=limits, budget=budget, closes=(raw,), **damaged)
