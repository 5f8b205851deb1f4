"""Reading a saved model's JSON files as untrusted input: one clear error for any damage."""

from __future__ import annotations

import json
from pathlib import Path

from flareseq.errors import FlareseqError


def read_versioned_json(path: Path, *, what: str, form: str, version: int) -> dict:
    """The JSON object in ``path`` written as format ``form`` version ``version``.

    A missing, unreadable or malformed file, another format or another version is a
    :class:`FlareseqError` naming the file, what was expected and what was found.
    """
    if not path.is_file():
        raise FlareseqError(f"{path.parent} is not a saved {what}: {path.name} is missing.")
    try:
        state = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FlareseqError(f"{path}: expected the {what}'s JSON, could not read it ({exc}). The model folder is "
                            "damaged; save or download it again.") from None
    found = (state.get("format"), state.get("version")) if isinstance(state, dict) else (None, None)
    if found != (form, version):
        raise FlareseqError(f"{path}: expected format {form!r} version {version}, found {found[0]!r} version "
                            f"{found[1]!r} (saved by another flareseq version, or not a model: retrain it).")
    return state
