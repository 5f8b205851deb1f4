"""The parameters of the flare MVTS data and the version of the store layout."""

from __future__ import annotations

# The 25 series of the Kaggle BigData Cup 2019 files, in the order of the competition's
# schema (SPEC section 1): 24 SHARP keywords and the GOES X-ray maximum XR_MAX. Readers
# select series by these names, never by position.
KAGGLE_PARAMETERS: tuple[str, ...] = (
    "TOTUSJH", "TOTBSQ", "TOTPOT", "TOTUSJZ", "ABSNJZH", "SAVNCPP", "USFLUX", "TOTFZ",
    "MEANPOT", "EPSZ", "MEANSHR", "SHRGT45", "MEANGAM", "MEANGBT", "MEANGBZ", "MEANGBH",
    "MEANJZH", "TOTFY", "MEANJZD", "MEANALP", "TOTFX", "EPSY", "EPSX", "R_VALUE", "XR_MAX",
)
N_KAGGLE_TIMESTEPS = 60
CADENCE_MINUTES = 12

# Bump when the on-disk layout of a store changes; readers refuse other versions.
STORE_SCHEMA_VERSION = 1

# Per-sample metadata columns every dataset carries (None/NaN/NaT where unknown).
META_COLUMNS: tuple[str, ...] = ("source", "fold", "region", "start", "end", "goes_class")

# Label value for a sample without a known label (the Kaggle test set).
UNLABELLED = -1
