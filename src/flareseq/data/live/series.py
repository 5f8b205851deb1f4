"""The SHARP series and cadences JSOC is asked for (no heavy imports: the CLI lists them)."""

from __future__ import annotations

# The definitive series and their near-real-time twins (available hours after observation,
# replaced by the definitive ones weeks later).
SERIES = ("hmi.sharp_cea_720s", "hmi.sharp_720s", "hmi.sharp_cea_720s_nrt", "hmi.sharp_720s_nrt")
DEFAULT_SERIES = "hmi.sharp_cea_720s"
DEFAULT_NRT_SERIES = "hmi.sharp_cea_720s_nrt"
CADENCES = {"12m": 12, "1h": 60, "96m": 96}
