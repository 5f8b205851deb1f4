"""Fault injection into real `flareseq` processes: nothing lost, nothing escapes (issue 16).

Each fault is a function in :data:`FAULTS` that takes a fresh work folder, injects one fault
into one or more real ``python -m flareseq ...`` processes (kills, a full or read-only file
system, racing writers, tampered stores, hostile archives and servers, links), and returns a
:class:`Row`: what was injected, what flareseq did, and what data was lost, judged from
SHA-256 snapshots of every file that must survive (inputs, earlier stores, files beside
the output) taken before and after. A fault *holds* when nothing was lost, no traceback was
printed, nothing was written outside the target and the outcome is the promised one.

    python benchmarks/faults.py            # every fault (~2 min on 2 busy cores)
    python benchmarks/faults.py --only kill,archive

Add a fault by writing ``def fault_x(work: Path) -> Row`` and listing it in FAULTS. The last line is
``RESULT {"n_faults", "n_held", "n_tracebacks", "bytes_escaped"}``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import platform
import random
import resource
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

GiB = 1 << 30
SEED = 16


# -- running flareseq --------------------------------------------------------------------------
@dataclass
class Run:
    code: int
    out: str
    err: str
    peak_rss_mb: float
    seconds: float


def flareseq(*args: str, limit_file_bytes: int | None = None, timeout: float = 600) -> Run:
    """``python -m flareseq ARGS`` in a child process; its own peak RSS sampled every 20 ms."""
    def prepare():
        if limit_file_bytes is not None:  # a "full disk" without root: writes past it fail (EFBIG)
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_file_bytes, limit_file_bytes))

    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        child = subprocess.Popen([sys.executable, "-m", "flareseq", *args], stdout=out, stderr=err,
                                 preexec_fn=prepare, env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"})
        deadline = started + timeout
        peak_kb = 0
        while True:
            peak_kb = max(peak_kb, _high_water_kb(child.pid))
            pid, status, _ = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                child.kill()
            time.sleep(0.02)
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Run(child.returncode, out.read().decode(errors="replace"), err.read().decode(errors="replace"),
                   peak_kb / 1024, time.perf_counter() - started)


def _high_water_kb(pid: int) -> int:
    """The process's peak RSS so far (VmHWM, reset at exec: the child's own, not the
    parent's pages it started with, which ru_maxrss would count)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def start_flareseq(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "flareseq", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


# -- what must survive ---------------------------------------------------------------------------
def snapshot(*roots: Path) -> dict[str, str]:
    """SHA-256 of every regular file under ``roots`` (links are recorded, not followed)."""
    found = {}
    for root in roots:
        paths = [root] if root.is_file() else sorted(p for p in root.rglob("*")) if root.exists() else []
        for p in paths:
            if p.is_symlink():
                found[str(p)] = "link:" + os.readlink(p)
            elif p.is_file():
                found[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return found


def lost(before: dict[str, str], after: dict[str, str]) -> str:
    gone = [p for p in before if p not in after]
    changed = [p for p in before if p in after and after[p] != before[p]]
    if not gone and not changed:
        return "none"
    return f"{len(gone)} removed, {len(changed)} changed: {(gone + changed)[:2]}"


def new_bytes(before: dict[str, str], root: Path, *, inside: list[Path] = ()) -> int:
    """Bytes of files under ``root`` that appeared since ``before``, outside ``inside``."""
    total = 0
    for p in root.rglob("*"):
        if str(p) in before or p.is_symlink() or not p.is_file():
            continue
        if any(p == d or d in p.parents for d in inside):
            continue
        total += p.stat().st_size
    return total


@dataclass
class Row:
    fault: str
    how: str
    outcome: str
    lost: str = "none"
    tracebacks: int = 0
    escaped: int = 0
    as_promised: bool = True
    details: dict = field(default_factory=dict)

    @property
    def held(self) -> bool:
        return self.as_promised and self.lost == "none" and self.tracebacks == 0 and self.escaped == 0


def tracebacks(*runs) -> int:
    return sum(r.err.count("Traceback") for r in runs)


def said(run: Run, work: Path, n: int = 110) -> str:
    """The first words of a run's error, the work folder's path left out."""
    text = run.err.strip().replace(str(work) + "/", "").replace(str(work), ".")
    return text if len(text) <= n else text[: n - 3] + "..."


def one_paragraph(run: Run) -> bool:
    return run.code == 2 and run.err.count("\n") == 1 and run.err.startswith("flareseq ")


# -- inputs --------------------------------------------------------------------------------------
def kaggle_input(path: Path, n: int, seed: int) -> Path:
    from flareseq.data.synthetic import write_synthetic_kaggle

    return write_synthetic_kaggle(path, n, seed=seed, progress=False)


def store_hash(path: Path) -> str | None:
    try:
        return json.loads((path / "manifest.json").read_text())["content_hash"]
    except (OSError, ValueError, KeyError):
        return None


def verified(path: Path) -> bool:
    return flareseq("verify", str(path), "--full").code == 0


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name or ".old-" in p.name)


# -- the faults ---------------------------------------------------------------------------------
def fault_kill(work: Path) -> Row:
    """kill -9 of `ingest --overwrite` at random points: the store is always the old one or the new one."""
    rng = random.Random(SEED)
    old_input, new_input = kaggle_input(work / "old.jsonl", 300, 1), kaggle_input(work / "new.jsonl", 3000, 2)
    out = work / "store"
    flareseq("ingest", str(old_input), "--out", str(out), "--no-progress")
    old_hash = store_hash(out)
    # how long an uninterrupted ingest takes here, so that the kills land inside it
    whole = flareseq("ingest", str(new_input), "--out", str(work / "timing"), "--no-progress", "--workers", "2")
    shutil.rmtree(work / "timing")
    before = snapshot(old_input, new_input)
    states, runs = [], [whole]
    n_kills = 8  # one kill in each eighth of 1.3 x the run, at a random point in it
    delays = [(i + rng.random()) / n_kills * 1.3 * whole.seconds for i in range(n_kills)]  # some after the end
    left_by_kills = set()
    for delay in delays:
        child = start_flareseq("ingest", str(new_input), "--out", str(out), "--overwrite", "--no-progress",
                               "--workers", "2")
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        child.wait()
        left_by_kills.update(leftovers(work))
        state = store_hash(out)
        states.append("old" if state == old_hash else "new" if state else "missing")
        if state is None or not verified(out):
            states[-1] += "(broken)"
    final = flareseq("ingest", str(new_input), "--out", str(out), "--overwrite", "--no-progress")
    runs.append(final)
    ok = final.code == 0 and verified(out) and not leftovers(work) and all(s in ("old", "new") for s in states)
    outcome = (f"after each kill the store was {'/'.join(states)} (complete, verified); {len(left_by_kills)} "
               f"partial stores left by kills were removed by the next ingests; the rerun exit {final.code}, "
               f"leftovers {leftovers(work) or 'none'}")
    return Row("kill -9 during ingest", f"SIGKILL after {', '.join(f'{d:.1f}' for d in delays)} s of "
               f"`ingest --overwrite` (3000 samples; {whole.seconds:.1f} s uninterrupted)", outcome, lost(before, snapshot(old_input, new_input)),
               tracebacks(*runs), 0, ok)


@contextlib.contextmanager
def small_filesystem(folder: Path, size: str, *, read_only: bool = False):
    """A tmpfs of ``size`` at ``folder`` when running as root; otherwise None (the caller
    falls back to a file-size limit or permissions)."""
    folder.mkdir()
    if os.geteuid() != 0:
        yield None
        return
    options = f"size={size}" + (",ro" if read_only else "")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        yield None
        return
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def fault_disk_full(work: Path) -> Row:
    source = kaggle_input(work / "x.jsonl", 1500, 3)
    before = snapshot(source)
    with small_filesystem(work / "small", "4m") as mounted:
        target = work / "small" / "store"
        if mounted is not None:
            how = "ingest 1500 samples (a ~7 MB store) --out on a 4 MB tmpfs"
            run = flareseq("ingest", str(source), "--out", str(target), "--no-progress")
        else:
            how = "ingest 1500 samples with RLIMIT_FSIZE 1 MB (writes past it fail)"
            run = flareseq("ingest", str(source), "--out", str(target), "--no-progress", limit_file_bytes=1 << 20)
        left = sorted(p.name for p in (work / "small").iterdir())
    ok = one_paragraph(run) and ("No space left" in run.err or "File too large" in run.err) and not left
    return Row("disk full", how, f"exit {run.code}: '{said(run, work)}'; left on the disk: {left or 'nothing'}",
               lost(before, snapshot(source)), tracebacks(run), 0, ok)


def fault_read_only(work: Path) -> Row:
    source = kaggle_input(work / "x.jsonl", 50, 4)
    before = snapshot(source)
    with small_filesystem(work / "ro", "1m", read_only=True) as mounted:
        if mounted is None:
            (work / "ro").chmod(0o555)
        run = flareseq("ingest", str(source), "--out", str(work / "ro" / "store"), "--no-progress")
        how = "--out on a read-only tmpfs" if mounted is not None else "--out in a folder of mode 555"
    ok = one_paragraph(run) and "cannot write the store" in run.err
    return Row("read-only output", how, f"exit {run.code}: '{said(run, work)}'", lost(before, snapshot(source)),
               tracebacks(run), 0, ok)


def fault_concurrent(work: Path) -> Row:
    a, b = kaggle_input(work / "a.jsonl", 1200, 5), kaggle_input(work / "b.jsonl", 1200, 6)
    before = snapshot(a, b)
    outcomes, ok, runs = [], True, []
    for overwrite in (False, True):
        out = work / f"store-{'overwrite' if overwrite else 'new'}"
        extra = ["--overwrite"] if overwrite else []
        children = [start_flareseq("ingest", str(x), "--out", str(out), "--no-progress", *extra) for x in (a, b)]
        codes = [c.wait() for c in children]
        errs = [c.stderr.read() for c in children]
        runs += [Run(code, "", err, 0, 0) for code, err in zip(codes, errs)]
        good = verified(out) and not leftovers(work)
        if not overwrite:  # exactly one wins, the other is refused
            good &= sorted(codes) == [0, 2]
        else:
            good &= all(code in (0, 2) for code in codes) and 0 in codes
        ok &= good
        outcomes.append(f"{'--overwrite' if overwrite else 'no --overwrite'}: exits {codes}, store verified, "
                        f"{'no' if not leftovers(work) else 'some'} leftovers")
    return Row("two writers, one --out", "two `ingest` processes started together to one --out, without and with "
               "--overwrite", "; ".join(outcomes), lost(before, snapshot(a, b)), tracebacks(*runs), 0, ok)


def _tamper(store: Path, kind: str) -> None:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from flareseq.data.store_format import DIGEST_KEY, manifest_digest

    part = sorted(store.glob("part-*.parquet"))[0]
    manifest = json.loads((store / "manifest.json").read_text())
    if kind == "flip a byte":
        data = bytearray(part.read_bytes())
        data[len(data) // 2] ^= 0x10
        part.write_bytes(bytes(data))
    elif kind == "truncate a part":
        part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])
    elif kind == "edit n_positive":
        manifest["counts"]["n_positive"] += 10
        manifest["counts"]["n_negative"] -= 10
        (store / "manifest.json").write_text(json.dumps(manifest, indent=2))
    else:  # rewrite labels and cover the tracks: checksums, counts and digest recomputed
        table = pq.read_table(part)
        flipped = pc.subtract(pa.scalar(1, pa.int8()), table.column("label")).cast(pa.int8())
        pq.write_table(table.set_column(1, "label", flipped), part)
        data = part.read_bytes()
        manifest["parts"][0].update(sha256=hashlib.sha256(data).hexdigest(), n_bytes=len(data))
        c = manifest["counts"]
        c["n_positive"], c["n_negative"] = c["n_negative"], c["n_positive"]
        manifest[DIGEST_KEY] = manifest_digest(manifest)
        (store / "manifest.json").write_text(json.dumps(manifest, indent=2))


def fault_tampered_store(work: Path) -> Row:
    source = kaggle_input(work / "x.jsonl", 200, 7)
    good = work / "good"
    flareseq("ingest", str(source), "--out", str(good), "--no-progress")
    kinds = ["flip a byte", "truncate a part", "edit n_positive", "rewrite labels, recompute checksums"]
    caught, runs, notes = 0, [], []
    for kind in kinds:
        store = work / kind.split()[0]
        shutil.copytree(good, store)
        _tamper(store, kind)
        quick, full = flareseq("verify", str(store)), flareseq("verify", str(store), "--full")
        read = flareseq("summary", str(store))
        runs += [quick, full, read]
        by = "quick" if quick.code == 2 else "full" if full.code == 2 else "nothing"
        caught += full.code == 2 and one_paragraph(full)
        notes.append(f"{kind}: caught by {by} verify, summary exit {read.code}")
    ok = caught == len(kinds) and verified(good)
    return Row("tampered store", "; ".join(kinds) + " (4 copies of one store)", "; ".join(notes),
               "none", tracebacks(*runs), 0, ok)


def _zeros_zip(path: Path, member: str, n: int) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive, archive.open(member, "w",
                                                                                   force_zip64=True) as out:
        block = bytes(1 << 20)
        for _ in range(n >> 20):
            out.write(block)


class _Zeros(io.RawIOBase):
    def __init__(self, n: int) -> None:
        self.n = n

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        k = min(len(buffer), self.n)
        buffer[:k] = bytes(k)
        self.n -= k
        return k


def _zeros_tar_gz(path: Path, member: str, n: int) -> None:
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo(member)
        info.size = n
        tar.addfile(info, io.BufferedReader(_Zeros(n), 1 << 20))


SAMPLE = "lab[NF]_id[1]_st[2014-01-01T00:00:00]_et[2014-01-01T11:48:00].csv"


def fault_archive_bombs(work: Path) -> Row:
    zip_bomb, tar_bomb, gz_bomb = work / "fold1Training.zip", work / "partition1.tar.gz", work / "fold2.json.gz"
    _zeros_zip(zip_bomb, "fold1Training.json", GiB)
    _zeros_tar_gz(tar_bomb, f"partition1/NF/{SAMPLE}", GiB)
    with open(work / "zeros", "wb") as handle:
        handle.truncate(GiB)
    subprocess.run(["gzip", "-k", "-f", str(work / "zeros")], check=True)
    os.replace(work / "zeros.gz", gz_bomb)
    (work / "zeros").unlink()
    sizes = {p.name: p.stat().st_size for p in (zip_bomb, tar_bomb, gz_bomb)}
    before = snapshot(work)
    runs = [flareseq("ingest", str(zip_bomb), "--out", str(work / "s1"), "--no-progress"),
            flareseq("ingest", str(tar_bomb), "--out", str(work / "s2"), "--on-error", "skip", "--no-progress"),
            flareseq("summary", str(gz_bomb), "--no-progress")]
    peak = max(r.peak_rss_mb for r in runs)
    ok = all(one_paragraph(r) and "bytes out per compressed byte" in r.err for r in runs)
    ok &= not any((work / s).exists() for s in ("s1", "s2"))
    return Row("archive bombs (ingest, summary)",
               f"1 GiB of zeros as a {sizes[zip_bomb.name] / 1e6:.1f} MB zip, {sizes[tar_bomb.name] / 1e6:.1f} MB "
               f"tar.gz, {sizes[gz_bomb.name] / 1e6:.1f} MB gz",
               f"all refused (exit {[r.code for r in runs]}, 'bytes out per compressed byte') in "
               f"{max(r.seconds for r in runs):.1f} s at most, peak RSS {peak:.0f} MB",
               lost(before, snapshot(work)), tracebacks(*runs), new_bytes(before, work), ok and peak < 1024,
               {"peak_rss_mb": round(peak)})


class _Dataverse:
    """A Dataverse-like server on 127.0.0.1: one dataset listing one file."""

    def __init__(self) -> None:
        self.filename, self.body = "", b""
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                if self.path.startswith("/api/datasets"):
                    body = json.dumps({"status": "OK", "data": {"latestVersion": {"files": [{"dataFile": {
                        "id": 1, "filename": server.filename, "filesize": len(server.body),
                        "checksum": {"type": "MD5", "value": hashlib.md5(server.body).hexdigest()}}}]}}}).encode()
                else:
                    body = server.body
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


def fault_download_bomb(work: Path) -> Row:
    archive = work / "bomb.tar.gz"
    _zeros_tar_gz(archive, f"partition1/NF/{SAMPLE}", GiB)
    server = _Dataverse()
    server.filename, server.body = "partition1_instances.tar.gz", archive.read_bytes()
    dest = work / "dest"
    before = snapshot(work)
    try:
        run = flareseq("download", "swan-sf", "--partitions", "1", "--dest", str(dest), "--base-url", server.url,
                       "--no-progress")
    finally:
        server.close()
    extracted = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file() and not p.name.endswith(".tar.gz"))
    ok = one_paragraph(run) and "bytes out per compressed byte" in run.err and extracted == 0
    return Row("download: tar.gz bomb", f"a Dataverse server on 127.0.0.1 serves a {len(server.body) / 1e6:.1f} MB "
               "partition archive that expands to 1 GiB", f"exit {run.code}, refused by the ratio; "
               f"{extracted} bytes left extracted, peak RSS {run.peak_rss_mb:.0f} MB",
               lost(before, snapshot(work)), tracebacks(run), new_bytes(before, work, inside=[dest]), ok)


def fault_dataverse_names(work: Path) -> Row:
    tree = work / "a" / "b"
    dest = tree / "dest"
    dest.mkdir(parents=True)
    (work / "victim.txt").write_text("keep me")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo(f"partition1/NF/{SAMPLE}")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"x\ty"))
    server = _Dataverse()
    server.body = buffer.getvalue()
    names = ["../../partition1_instances.tar.gz", "/tmp/flareseq-fault-abs/partition1_instances.tar.gz",
             "sub/../../partition1_instances.tar.gz", "partition1_instances.tar.gz"]
    runs = []
    before = snapshot(work)
    try:
        for name in names[:3]:
            server.filename = name
            runs.append(flareseq("download", "swan-sf", "--partitions", "1", "--dest", str(dest), "--base-url",
                                 server.url, "--keep-archives", "--no-progress"))
        server.filename = names[3]  # a plain name, but dest/<name>.part is a link to a file outside
        (dest / (names[3] + ".part")).symlink_to(work / "victim.txt")
        runs.append(flareseq("download", "swan-sf", "--partitions", "1", "--dest", str(dest), "--base-url",
                             server.url, "--keep-archives", "--no-progress"))
    finally:
        server.close()
    escaped = new_bytes(before, work, inside=[dest]) + new_bytes({}, Path("/tmp/flareseq-fault-abs"))
    ok = all(one_paragraph(r) for r in runs)
    return Row("download: path-escaping names", "server file names " + ", ".join(repr(n) for n in names[:3])
               + "; a .part link to a file outside --dest", f"all refused (exit {[r.code for r in runs]})",
               lost(before, snapshot(work)), tracebacks(*runs), escaped, ok)


def fault_links(work: Path) -> Row:
    from flareseq.data.swansf import write_swansf
    from flareseq.data.synthetic import synthetic_dataset

    folder = work / "swan"
    write_swansf(synthetic_dataset(6, seed=8), folder)
    partition = next(folder.glob("partition*"))
    secret = work / "secret.txt"
    secret.write_text("TOP-SECRET-LINE\tnot a sample\n")
    (partition / SAMPLE).symlink_to("/dev/zero")
    (partition / SAMPLE.replace("id[1]", "id[2]")).symlink_to(secret)
    os.mkfifo(partition / SAMPLE.replace("id[1]", "id[3]"))
    before = snapshot(work)
    raised = flareseq("ingest", str(folder), "--out", str(work / "s1"), "--no-progress")
    skipped = flareseq("ingest", str(folder), "--out", str(work / "s2"), "--on-error", "skip", "--no-progress")
    text = raised.out + raised.err + skipped.out + skipped.err
    text += (work / "s2" / "skipped.tsv").read_text() if (work / "s2" / "skipped.tsv").exists() else ""
    leaked = text.count("TOP-SECRET-LINE") * len("TOP-SECRET-LINE")
    manifest = json.loads((work / "s2" / "manifest.json").read_text()) if (work / "s2").exists() else {}
    n = manifest.get("counts", {}).get("n_samples")
    ok = one_paragraph(raised) and skipped.code == 0 and n == 6 and manifest.get("n_skipped") == 3
    return Row("links and FIFOs in a SWAN-SF folder", "sample-named links to /dev/zero and to a secret file outside, "
               "and a FIFO", f"raise: exit {raised.code} in {raised.seconds:.1f} s (peak RSS {raised.peak_rss_mb:.0f} MB); "
               f"skip: exit {skipped.code}, {n} read + {manifest.get('n_skipped')} skipped of 9; secret content "
               f"in any output: {'no' if not leaked else 'YES'}", lost(before, snapshot(work)),
               tracebacks(raised, skipped), leaked, ok)


def fault_bad_bytes(work: Path) -> Row:
    """Item 6: the inputs that ended in tracebacks."""
    import gzip

    from flareseq.data.synthetic import write_synthetic_kaggle

    lines = write_synthetic_kaggle(work / "good.jsonl", 3, seed=9, progress=False).read_bytes().splitlines()
    nested = work / "nested.jsonl"
    nested.write_bytes(b"\n".join([lines[0], b'{"id": 9, "values": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
                                   lines[1], lines[2]]) + b"\n")
    truncated = work / "t.json.gz"
    packed = gzip.compress(b"\n".join(lines) + b"\n")
    truncated.write_bytes(packed[: len(packed) // 2])
    flareseq("ingest", str(work / "good.jsonl"), "--out", str(work / "store"), "--no-progress")
    part = next((work / "store").glob("part-*.parquet"))
    part.write_bytes(part.read_bytes()[:-64])
    before = snapshot(work)
    runs = {
        "nested JSON, raise": flareseq("ingest", str(nested), "--out", str(work / "n1"), "--no-progress"),
        "nested JSON, skip": flareseq("ingest", str(nested), "--out", str(work / "n2"), "--on-error", "skip",
                                      "--no-progress"),
        "truncated .gz ingest": flareseq("ingest", str(truncated), "--out", str(work / "g"), "--no-progress"),
        "truncated .gz summary": flareseq("summary", str(truncated), "--no-progress"),
        "truncated part summary": flareseq("summary", str(work / "store")),
        "truncated part verify": flareseq("verify", str(work / "store")),
    }
    skip = runs.pop("nested JSON, skip")
    n2 = json.loads((work / "n2" / "manifest.json").read_text()) if (work / "n2").exists() else {}
    ok = all(one_paragraph(r) for r in runs.values()) and skip.code == 0 and n2.get("n_skipped") == 1
    return Row("bad bytes (item 6)", "100,000-deep nested JSON line; a .gz cut in half; a part missing its last "
               "64 bytes", f"exit 2, one paragraph, in all {len(runs)} raising cases; --on-error skip: "
               f"{n2.get('counts', {}).get('n_samples')} read + {n2.get('n_skipped')} skipped of 4",
               lost(before, snapshot(work)), tracebacks(skip, *runs.values()), 0, ok)


# -- tracking and models (items 6-9) -------------------------------------------------------------
TRAIN_SMALL = ["--set", "data.synthetic_samples=600", "--set", "training.epochs=1", "--set", "tracking.plots=false",
               "--set", "verification.n_bootstrap=0", "--set", "model.params={hidden_size=4}", "--no-progress"]


def _runs(store: Path, experiment: str = "flareseq") -> list:
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    found = client.get_experiment_by_name(experiment)
    return [] if found is None else client.search_runs([found.experiment_id])


def fault_concurrent_train(work: Path) -> Row:
    """Item 7: two `flareseq train` on a brand-new --output-dir (MLflow's schema set-up raced)."""
    store = work / "runs"
    children = [subprocess.Popen([sys.executable, "-m", "flareseq", "train", "--output-dir", str(store),
                                  "--name", f"run-{i}", *TRAIN_SMALL], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True) for i in range(2)]
    errors = [c.communicate(timeout=900)[1] for c in children]
    codes = [c.returncode for c in children]
    finished = sorted(r.info.run_name for r in _runs(store) if r.info.status == "FINISHED")
    ok = codes == [0, 0] and finished == ["run-0", "run-1"]
    return Row("two trainings, one new store", "two `flareseq train` started together on an --output-dir that "
               "does not exist yet", f"exits {codes}; finished runs {finished}",
               "none" if ok else f"{2 - len(finished)} run(s) lost", sum(e.count("Traceback") for e in errors), 0, ok)


def fault_kill_training(work: Path) -> Row:
    """Item 8: kill -9 during training leaves no run RUNNING forever: the next run marks it."""
    store = work / "runs"
    child = subprocess.Popen([sys.executable, "-m", "flareseq", "train", "--output-dir", str(store), "--name",
                              "doomed", *TRAIN_SMALL[:-1], "--set", "training.epochs=200", "--set",
                              "data.synthetic_samples=3000"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True)
    deadline = time.time() + 600
    while time.time() < deadline and not any(r.info.status == "RUNNING" for r in _safe_runs(store)):
        time.sleep(1)
    time.sleep(3)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=60)
    before = [r.info.status for r in _safe_runs(store)]
    rerun = flareseq("train", "--output-dir", str(store), "--name", "next", *TRAIN_SMALL)
    statuses = {r.info.run_name: r.info.status for r in _runs(store)}
    ok = before == ["RUNNING"] and statuses == {"doomed": "KILLED", "next": "FINISHED"} and rerun.code == 0
    return Row("kill -9 during training", "SIGKILL of `flareseq train` mid-epoch, then another `flareseq train` "
               "on the same store", f"killed run {before} -> {statuses.get('doomed')}; next run "
               f"{statuses.get('next')} (\"marked 1 run ... as KILLED\")", "none", tracebacks(rerun), 0, ok)


def _safe_runs(store: Path) -> list:
    try:
        return _runs(store)
    except Exception:  # noqa: BLE001 - the store may not exist yet
        return []


def fault_ui_sigterm(work: Path) -> Row:
    """Item 9: SIGTERM to `flareseq ui` stops the MLflow server too (the port is free after)."""
    import socket
    import urllib.request

    store = work / "runs"
    flareseq("train", "--output-dir", str(store), *TRAIN_SMALL)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    child = subprocess.Popen([sys.executable, "-m", "flareseq", "ui", "--output-dir", str(store), "--port",
                              str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
    up = False
    deadline = time.time() + 120
    while time.time() < deadline and not up:
        try:
            up = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).status == 200
        except OSError:
            time.sleep(1)
    child.send_signal(signal.SIGTERM)
    child.wait(timeout=60)
    time.sleep(1)
    # Free = nothing listens: a connection is refused and the port can be bound again. SO_REUSEADDR
    # because the closed probe connection may leave the port in TIME_WAIT, which is no server.
    with socket.socket() as again:
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            again.bind(("127.0.0.1", port))
            free = True
        except OSError:
            free = False
    with socket.socket() as knock:
        knock.settimeout(2)
        free = free and knock.connect_ex(("127.0.0.1", port)) != 0
    err = child.stderr.read()
    ok = up and free
    return Row("SIGTERM to flareseq ui", "SIGTERM to `flareseq ui` once its MLflow server answered",
               f"server was up: {up}; exit {child.returncode}; port free after: {free}", "none",
               err.count("Traceback"), 0, ok)


def fault_tampered_model(work: Path) -> Row:
    """Item 6 (models): a saved model with damaged weights or an edited configuration."""
    from flareseq.data.synthetic import write_synthetic_kaggle

    store = work / "runs"
    flareseq("train", "--output-dir", str(store), "--name", "m", *TRAIN_SMALL)
    import mlflow

    (run,) = _runs(store)
    mlflow.set_tracking_uri(f"sqlite:///{store / 'mlflow.db'}")
    folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"runs:/{run.info.run_id}/model",
                                                      dst_path=str(work / "model")))
    forecaster = next(folder.rglob("forecaster.json")).parent
    data = write_synthetic_kaggle(work / "new.jsonl", 5, seed=2, progress=False)
    weights = forecaster / "classifier" / "weights.safetensors"
    runs = []
    raw = bytearray(weights.read_bytes())
    raw[3] ^= 0xFF
    weights.write_bytes(bytes(raw))
    runs.append(flareseq("predict", str(forecaster), "--data", str(data), "--out", str(work / "p1.csv")))
    config = forecaster / "classifier" / "config.json"
    config.write_text(config.read_text().replace('"n_features": 25', '"n_features": "many"'))
    runs.append(flareseq("predict", str(forecaster), "--data", str(data), "--out", str(work / "p2.csv")))
    ok = all(one_paragraph(r) for r in runs) and not (work / "p1.csv").exists()
    def gist(run: Run) -> str:  # the message from the file name on
        text = run.err.strip()
        name = next((n for n in ("weights.safetensors", "config.json") if n in text), "")
        return f"exit {run.code}: " + (text[text.index(name):][:60] + "..." if name else text[:60])

    return Row("tampered model", "a byte of weights.safetensors flipped; then n_features edited in config.json",
               "; ".join(gist(r) for r in runs), "none", tracebacks(*runs), 0, ok)


FAULTS = {
    "kill": fault_kill,
    "disk_full": fault_disk_full,
    "read_only": fault_read_only,
    "concurrent": fault_concurrent,
    "tampered": fault_tampered_store,
    "archive": fault_archive_bombs,
    "download_bomb": fault_download_bomb,
    "names": fault_dataverse_names,
    "links": fault_links,
    "bad_bytes": fault_bad_bytes,
    "train_race": fault_concurrent_train,
    "kill_training": fault_kill_training,
    "ui_sigterm": fault_ui_sigterm,
    "tampered_model": fault_tampered_model,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="comma-separated fault names: " + ", ".join(FAULTS))
    args = parser.parse_args()
    chosen = args.only.split(",") if args.only else list(FAULTS)
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    print(f"CPU: {cpu}; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}; "
          f"{'root (tmpfs for full and read-only disks)' if os.geteuid() == 0 else 'not root (file-size limit, chmod)'}")
    rows = []
    for name in chosen:
        with tempfile.TemporaryDirectory(prefix=f"flareseq-fault-{name}-") as folder:
            started = time.perf_counter()
            row = FAULTS[name](Path(folder))
            row.details["seconds"] = round(time.perf_counter() - started, 1)
        rows.append(row)
        print(f"| {row.fault} | {row.how} | {row.outcome} | data lost: {row.lost} |"
              f"{'' if row.held else ' NOT HELD'}", flush=True)
    print()
    print("| fault | how injected | outcome | data lost |")
    print("|---|---|---|---|")
    for row in rows:
        print(f"| {row.fault} | {row.how} | {row.outcome} | data lost: {row.lost} |")
    result = {"n_faults": len(rows), "n_held": sum(r.held for r in rows),
              "n_tracebacks": sum(r.tracebacks for r in rows), "bytes_escaped": sum(r.escaped for r in rows)}
    print("RESULT " + json.dumps(result))
    return 0 if result["n_held"] == result["n_faults"] else 1


if __name__ == "__main__":
    sys.exit(main())
