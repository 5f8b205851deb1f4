"""The download facade: what it exports, what it costs to import, and progress bars."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import flareseq.data.download as download
from flareseq.cli import build_parser


def test_facade_exports_the_public_functions():
    for name in download.__all__:
        assert getattr(download, name) is not None
    assert download.SWAN_SF_DOI == "doi:10.7910/DVN/EBCFKM"
    assert download.KAGGLE_COMPETITION == "bigdata2019-flare-prediction"


def test_importing_the_download_code_loads_neither_the_kaggle_client_nor_tqdm():
    code = (
        "import sys, flareseq.data.download, flareseq.cli.download; "
        "print(sorted(m for m in ('kaggle', 'tqdm') if m in sys.modules))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


def test_cli_lists_both_sources():
    parser = build_parser()
    args = parser.parse_args(["download", "swan-sf", "--dest", "d", "--partitions", "1", "3"])
    assert args.partitions == [1, 3] and args.base_url is None and args.func.__name__ == "_run_swan_sf"
    args = parser.parse_args(["download", "kaggle", "--dest", "d"])
    assert args.competition == "bigdata2019-flare-prediction" and args.func.__name__ == "_run_kaggle"


def test_progress_bar_on_stderr_through_drops_and_restarts(file_server, tmp_path, capsys):
    content = bytes(range(256)) * 40
    file_server.files["/f.bin"] = content
    file_server.range_support = False
    file_server.drops["/f.bin"] = [3000]
    checksum = download.Checksum("MD5", hashlib.md5(content).hexdigest())
    path = download.download_file(file_server.url + "/f.bin", tmp_path / "f.bin", checksum=checksum,
                                  retries=2, backoff=0.01, timeout=5, progress=True, chunk_size=512)
    assert path.read_bytes() == content
    err = capsys.readouterr().err
    assert "f.bin" in err and "10.0k" in err  # tqdm's bar, scaled in kB
