"""``flareseq ui``: the MLflow UI on 127.0.0.1 for an existing tracking store.

The MLflow server is a child process with children of its own (uvicorn workers). It runs in
its own process group, and whatever ends ``flareseq ui`` -- Ctrl-C, SIGTERM, SIGHUP, the
server exiting -- stops that whole group, so no server is left holding the port. A busy
port is refused before the server starts (exit 2, with a free port to use instead).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from flareseq.cli import add_command
from flareseq.cli.store import add_store_options, existing_store_uri
from flareseq.errors import FlareseqError

HOST = "127.0.0.1"
DEFAULT_PORT = 5000
STOP_GRACE_SECONDS = 10.0  # SIGTERM to the server's group, then SIGKILL after this long


class PortInUseError(FlareseqError):
    """The port ``flareseq ui`` should listen on is taken."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(
        subparsers, "ui",
        help="the MLflow UI on 127.0.0.1, pointed at the tracking store",
        description=f"Serve the MLflow UI for the tracking store on http://{HOST}:PORT until Ctrl-C or SIGTERM "
        "(both stop the MLflow server and its workers). The store must exist: a mistyped --output-dir is an "
        "error, not a new empty store (--create starts one on purpose). A busy port is an error that names a "
        "free one.",
        examples=["flareseq ui                              # the store in runs/, on port 5000",
                  "flareseq ui --output-dir demo-output --port 5001"],
    )
    add_store_options(p, experiment=False)
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"port on {HOST} to serve on (default {DEFAULT_PORT}); a busy port is an error")
    p.add_argument("--create", action="store_true", help="create an empty store when there is none at --output-dir")
    p.set_defaults(func=cmd_ui)


def cmd_ui(args: argparse.Namespace) -> int:
    uri = existing_store_uri(args, create=args.create)
    check_port_free(args.port)
    print(f"MLflow UI for {uri} on http://{HOST}:{args.port} (Ctrl-C to stop)", file=sys.stderr, flush=True)
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", HOST,
               "--port", str(args.port)]
    return run_until_stopped(command)


def check_port_free(port: int, host: str = HOST) -> None:
    """Refuse a port another program listens on, naming a free one to use instead."""
    if not 0 < port < 65536:
        raise PortInUseError(f"--port {port}: expected a port number in 1-65535.")
    if _can_bind(host, port):
        return
    free = next((p for p in range(port + 1, min(port + 50, 65536)) if _can_bind(host, p)), None)
    instead = f"; use another with --port, e.g. --port {free}" if free else "; use another with --port"
    raise PortInUseError(f"port {port} on {host} is already in use (another `flareseq ui` or server?){instead}.")


def _can_bind(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As servers bind (uvicorn sets it too): a port left in TIME_WAIT is free, a listener is not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


class _Stop(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def run_until_stopped(command: list[str]) -> int:
    """Run ``command`` in a new process group until it exits or this process is told to stop
    (SIGINT, SIGTERM, SIGHUP); either way the whole group is stopped before returning.

    Returns the child's exit status, 130 after Ctrl-C, or 128 + the signal number.
    """
    def stop(signum, frame):
        raise _Stop(signum)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGHUP)}
    process = subprocess.Popen(command, start_new_session=True)
    try:
        return process.wait()
    except KeyboardInterrupt:
        print("flareseq ui: stopping the MLflow server", file=sys.stderr)
        return 130
    except _Stop as stopped:
        return 128 + stopped.signum
    finally:
        # A second Ctrl-C or SIGTERM must not cut the clean-up short and leave the server running.
        previous.setdefault(signal.SIGINT, signal.getsignal(signal.SIGINT))
        for signum in previous:
            signal.signal(signum, signal.SIG_IGN)
        stop_process_group(process)
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def stop_process_group(process: subprocess.Popen, grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM to the group led by ``process``, SIGKILL to what is left after ``grace``
    seconds; the group's processes that outlive their leader (workers) are included."""
    group = process.pid  # start_new_session: the child leads its own group
    for signum in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(group, signum)
        except ProcessLookupError:
            break  # nobody left in the group
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if process.poll() is not None and not group_members(group):
                return
            time.sleep(0.05)
    process.poll()


def group_members(group: int) -> list[int]:
    """The live (not zombie) processes of process group ``group``, from /proc; where there is
    no /proc, [group] if anything in the group still takes signals."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return []
        except PermissionError:
            pass
        return [group]
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        # pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses, so split after the last ')'.
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[2]) == group and fields[0] != "Z":
            members.append(int(entry.name))
    return members
