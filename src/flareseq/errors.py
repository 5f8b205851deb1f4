"""The exceptions and warnings flareseq raises.

Every message says what was wrong, what was expected and what was found, where (file and
line, or parameter) and how to fix it. The command line prints a :class:`FlareseqError`
without a traceback and exits non-zero; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from os import PathLike


class FlareseqError(Exception):
    """Base class of the errors a user can fix (bad input, bad configuration)."""

    exit_code = 2


class DataFormatError(FlareseqError):
    """A data file does not have the expected layout or content.

    Parameters
    ----------
    path : the file (or archive member) being read.
    line : 1-based line number, when the format has lines.
    field : the field, column or parameter at fault.
    expected, found : what should have been there and what was.
    hint : how to fix it or get past it (for example ``--on-error skip``).
    """

    def __init__(
        self,
        path: str | PathLike[str],
        *,
        expected: str,
        found: str,
        line: int | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.path = str(path)
        self.line = line
        self.field = field
        self.expected = expected
        self.found = found
        self.hint = hint
        where = self.path if line is None else f"{self.path}, line {line}"
        what = f"field {field!r}: " if field else ""
        message = f"{where}: {what}expected {expected}, found {found}."
        if hint:
            message += f" {hint}"
        super().__init__(message)

    def __reduce__(self):
        # Keyword-only arguments need help to survive pickling across worker processes.
        return (_rebuild_data_format_error, (self.path, self.line, self.field, self.expected, self.found, self.hint))


def _rebuild_data_format_error(path, line, field, expected, found, hint):
    return DataFormatError(path, line=line, field=field, expected=expected, found=found, hint=hint)


class UnsupportedInputError(FlareseqError):
    """A path is none of the formats flareseq reads."""


class StoreError(FlareseqError):
    """A columnar store is missing, incomplete or of another schema version."""


class ConfigError(FlareseqError):
    """A configuration key or value is invalid."""


class LeakageError(FlareseqError):
    """A requested feature is a source of the label (it would leak the answer)."""


class NotFittedError(FlareseqError, ValueError):
    """An estimator was used before ``fit`` (as in scikit-learn, also a ``ValueError``)."""


class MissingDependencyError(FlareseqError, ImportError):
    """An optional dependency is not installed; the message gives the install command."""

    def __init__(self, package: str, extra: str, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs the optional package {package!r}, which is not installed. "
            f"Install it with: pip install 'flareseq[{extra}]'"
        )


class DownloadError(FlareseqError):
    """A download failed, or its content does not match the published checksum."""


class FlareseqWarning(UserWarning):
    """Something the user should know about, such as skipped records or a leaky split."""


def show_warnings_plainly() -> None:
    """Print flareseq's own warnings as one line ``warning: ...`` (not Python's file, line and
    source line, which say nothing to a user of the command line); other warnings as before."""
    import warnings

    default = warnings.formatwarning

    def formatted(message, category, filename, lineno, line=None):
        if issubclass(category, FlareseqWarning):
            return f"warning: {message}\n"
        return default(message, category, filename, lineno, line)

    warnings.formatwarning = formatted
