"""What a store writer may replace or remove: only its own stores and files.

``--overwrite`` replaces a complete flareseq store and nothing else (:func:`check_replaceable`);
a store is never written at or above one of its inputs (:func:`check_not_inside`); files are
removed by name, never with ``rmtree`` (:func:`remove_store_files`); what killed writers
left behind is cleaned or restored (:func:`recover_leftovers`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from flareseq.data.store_format import MANIFEST_NAME, SKIPPED_NAME
from flareseq.errors import StoreError

# -- what may be replaced or removed -------------------------------------------------------
_STORE_FILE_NAMES = (MANIFEST_NAME, SKIPPED_NAME)
_TMP_MARKERS = (".tmp-", ".old-")


def _is_store_file(name: str) -> bool:
    return name in _STORE_FILE_NAMES or (name.startswith("part-") and name.endswith(".parquet"))


def check_replaceable(path: Path) -> None:
    """Raise unless ``path`` is a complete flareseq store holding only a store's own files.

    ``--overwrite`` replaces a store; it must never delete a user's folder, a plain file or
    a store someone added their own files to.
    """
    if path.is_symlink() or not path.is_dir():
        what = "a symbolic link" if path.is_symlink() else "a file"
        raise StoreError(f"{path} is {what}, not a flareseq store; --overwrite replaces only a store. "
                         "Choose another --out.")
    try:
        manifest = json.loads((path / MANIFEST_NAME).read_text())
        is_store = isinstance(manifest, dict) and manifest.get("format") == "flareseq-store"
    except (OSError, ValueError):
        is_store = False
    if not is_store:
        raise StoreError(f"{path} exists and is not a flareseq store (no {MANIFEST_NAME} of format "
                         "'flareseq-store'); --overwrite replaces only a store, never other folders. "
                         "Choose another --out.")
    foreign = sorted(p.name for p in path.iterdir() if p.is_symlink() or not p.is_file()
                     or not _is_store_file(p.name))
    if foreign:
        raise StoreError(f"{path} is a flareseq store but also holds {foreign[:5]}"
                         f"{' ...' if len(foreign) > 5 else ''}, which flareseq did not write; --overwrite "
                         "would delete them. Move them out of the store, or choose another --out.")


def check_not_inside(out: Path, source: Path) -> None:
    """Refuse to write a store at or above one of its own inputs (replacing it would delete it)."""
    out_abs, source_abs = out.resolve(), source.resolve()
    if out_abs == source_abs or out_abs in source_abs.parents:
        raise StoreError(f"--out {out} is {'the input' if out_abs == source_abs else 'a folder holding the input'} "
                         f"{source}; a store is never written over its own input. Choose another --out.")


def remove_store_files(folder: Path) -> None:
    """Delete the files a store writer made in ``folder``, then ``folder`` if it is empty.

    Only a store's own file names are removed (never ``rmtree``): anything else found there
    stays, and so does the folder.
    """
    for entry in folder.iterdir():
        if not entry.is_symlink() and entry.is_file() and _is_store_file(entry.name):
            entry.unlink()
    try:
        folder.rmdir()
    except OSError:
        pass


def recover_leftovers(path: Path) -> list[str]:
    """Deal with what killed ingests left beside ``path``; returns what was done.

    ``.NAME.old-*`` is a store moved aside by an overwrite that was killed before the new one
    took its place: put back when ``path`` is missing, else removed. ``.NAME.tmp-PID-*`` is a
    partial store of a writer that is no longer running: removed (a live writer's is left).
    """
    done = []
    for entry in sorted(path.parent.glob(f".{path.name}.*")):
        marker = entry.name[len(path.name) + 1:]
        if entry.is_symlink() or not entry.is_dir() or not marker.startswith(_TMP_MARKERS):
            continue
        if marker.startswith(".old-"):
            if not path.exists() and (entry / MANIFEST_NAME).is_file():
                entry.rename(path)
                done.append(f"restored {path} from {entry.name}")
            else:
                remove_store_files(entry)
                done.append(f"removed {entry.name}")
        else:
            pid = marker.split("-")[1] if marker.count("-") >= 2 else ""
            if pid.isdigit() and process_alive(int(pid)):
                continue
            remove_store_files(entry)
            done.append(f"removed {entry.name}")
    return done


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (on this host); this process counts as alive."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
