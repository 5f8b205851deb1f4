"""The leak guard: columns that are sources of the label never become features.

Keyword tables built for flare forecasting often carry the answer beside the inputs: the
SMARP files of Sun et al. (2022) list the flares after each window (``flares``) and a flare
index (``FLARE_INDEX``) that is non-zero almost only for positives. A model given either one
scores near-perfectly and learns nothing about the Sun. :func:`check_features` refuses such
columns unless the user says explicitly that they know, and then still warns.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence

from flareseq.errors import ConfigError, FlareseqWarning, LeakageError

# Why each default column leaks; the reason is quoted in the error so the user can judge it.
LEAKY_FEATURE_REASONS: Mapping[str, str] = {
    "flares": "it lists the flares that start after the window, which is where the label comes from",
    "FLARE_INDEX": (
        "it is computed from the flares after the window (in the SMARP tables it is non-zero "
        "almost only for positive samples)"
    ),
}

DEFAULT_LEAKY_FEATURES: tuple[str, ...] = tuple(LEAKY_FEATURE_REASONS)


def check_features(
    features: Sequence[str],
    *,
    leaky_features: Iterable[str] = DEFAULT_LEAKY_FEATURES,
    label_column: str | None = None,
    allow_leaky_features: bool = False,
    where: str = "features",
) -> None:
    """Refuse features that are sources of the label.

    Names are compared case-insensitively (``flare_index`` is as leaky as ``FLARE_INDEX``).
    The label column itself is always refused as a feature.

    Parameters
    ----------
    features : the feature columns asked for.
    leaky_features : the forbidden columns (default: ``flares``, ``FLARE_INDEX``).
    label_column : the column the labels come from, if any; never a feature.
    allow_leaky_features : let forbidden columns through with a :class:`FlareseqWarning`
        instead of an error (for leakage studies only; results are not forecasts).
    where : the configuration key or option that named the features, quoted in messages.

    Raises
    ------
    LeakageError
        When a forbidden column is asked for and ``allow_leaky_features`` is false.
    """
    if isinstance(features, str):
        raise ConfigError(f"{where} must be a list of column names, got the single string {features!r}.")
    forbidden = {name.lower(): name for name in leaky_features}
    reasons = {name.lower(): reason for name, reason in LEAKY_FEATURE_REASONS.items()}
    if label_column is not None:
        forbidden[label_column.lower()] = label_column
        reasons[label_column.lower()] = "it is the label column itself"
    found = [name for name in features if name.lower() in forbidden]
    if not found:
        return
    explained = "; ".join(
        f"{name!r}: {reasons.get(name.lower(), 'it is listed as a label source (leaky_features)')}"
        for name in found
    )
    if not allow_leaky_features:
        raise LeakageError(
            f"{where} include{'s' if len(found) == 1 else ''} label source column(s) {found}, "
            f"which would leak the answer into the inputs: {explained}. Remove "
            f"{'it' if len(found) == 1 else 'them'} from {where}; only for a deliberate leakage "
            "study set allow_leaky_features=True (--allow-leaky-features on the command line); results "
            "are then not forecasts."
        )
    warnings.warn(
        f"allow_leaky_features=True: using label source column(s) {found} as features "
        f"({explained}); skill measured with them is not forecasting skill.",
        FlareseqWarning,
        stacklevel=2,
    )
