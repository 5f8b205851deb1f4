"""What every benchmark prints about the machine, and how a smaller CPU is emulated.

``cpu_info()`` gives the CPU model and the vector flags that decide which code runs (torch's
kernels, oneDNN, flareseq's C loops). ``emulate_isa(name)`` re-runs the calling script
with the instruction sets above ``name`` switched off where the libraries allow it:

* torch's ATen kernels: ``ATEN_CPU_CAPABILITY`` (``avx2`` or ``default``);
* oneDNN (torch's and TensorFlow's): ``ONEDNN_MAX_CPU_ISA``;
* MKL: ``MKL_ENABLE_INSTRUCTIONS`` (on AMD CPUs MKL runs its AVX2 code anyway);
* flareseq's LSTM loop: ``FLARESEQ_LSTM_LOOP`` (its AVX2 or baseline copy).

TensorFlow's own (Eigen) kernels are compiled for AVX/AVX2 and are not capped: on an
AVX2-only CPU they run the same code. Clock speed, caches and core design stay this
machine's, so an emulated figure is an estimate for that kind of CPU, not a measurement
of one.
"""

from __future__ import annotations

import os
import platform
import re
import sys
from pathlib import Path

RELEVANT_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512dq", "avx512bw", "avx512vl",
                  "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "asimd", "sve")
ISA_CAPS = {
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
             "FLARESEQ_LSTM_LOOP": "avx2"},
    "generic": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41",
                "MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "FLARESEQ_LSTM_LOOP": "generic"},
}
_ABOVE = {"avx2": ("avx512", "amx"), "generic": ("avx", "fma", "f16c", "amx")}
_MARK = "FLARESEQ_BENCH_EMULATED_ISA"


def cpu_info() -> dict:
    """``{"cpu": model name, "cpu_flags": [relevant flags], "cpu_mhz": nominal clock,
    "emulated_isa": None or the cap in force}``; flags above an emulated cap are dropped."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"^(?:model name|Model|Hardware)\s*:\s*(.+)$", text, re.M)
    flags_line = re.search(r"^(?:flags|Features)\s*:(.*)$", text, re.M)
    flags = set(flags_line.group(1).split()) if flags_line else set()
    mhz = re.search(r"^cpu MHz\s*:\s*([\d.]+)", text, re.M)
    emulated = os.environ.get(_MARK) or None
    relevant = [f for f in RELEVANT_FLAGS if f in flags]
    if emulated:
        relevant = [f for f in relevant if not f.startswith(_ABOVE[emulated])]
    return {"cpu": model.group(1).strip() if model else (platform.processor() or platform.machine()),
            "cpu_flags": relevant, "cpu_mhz": float(mhz.group(1)) if mhz else None, "emulated_isa": emulated}


def cpu_line(info: dict) -> str:
    emulated = f" (emulating an {info['emulated_isa']} CPU: flags above it switched off)" if info["emulated_isa"] else ""
    return f"cpu: {info['cpu']}; flags: {' '.join(info['cpu_flags'])}{emulated}"


def emulate_isa(name: str | None, argv: list[str]) -> None:
    """Re-run this script (``sys.argv[0]`` with ``argv``) under the caps of ``name``, once;
    nothing when ``name`` is None or the caps are already in force."""
    if not name or os.environ.get(_MARK) == name:
        return
    env = {**os.environ, **ISA_CAPS[name], _MARK: name}
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, sys.argv[0], *argv], env)
