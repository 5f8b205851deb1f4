"""Getting the real data: one import point for the download functions.

- :func:`download_kaggle`: the Kaggle BigData Cup 2019 files (the study's data), through
  the official Kaggle client (``pip install 'flareseq[kaggle]'``) and the user's own
  credentials; see :mod:`flareseq.data.download.kaggle`.
- :func:`download_swan_sf`: the SWAN-SF partitions from Harvard Dataverse, no credentials;
  see :mod:`flareseq.data.download.dataverse`.
- :func:`download_file`: the resumable, retried, checksum-verified HTTP transfer both
  rest on; see :mod:`flareseq.data.download.http`.

Importing this module imports neither the Kaggle client nor anything heavy.
"""

from __future__ import annotations

from flareseq.data.download.dataverse import (
    DATAVERSE_URL_ENV,
    DEFAULT_DATAVERSE_URL,
    SWAN_SF_DOI,
    SWAN_SF_PARTITIONS,
    DataverseFile,
    ExtractedArchive,
    download_swan_sf,
    extract_tar,
    list_dataset_files,
    parse_dataset_files,
    resolve_base_url,
    select_partition_files,
)
from flareseq.data.download.http import Checksum, download_file, file_checksum
from flareseq.data.download.kaggle import (
    KAGGLE_COMPETITION,
    KAGGLE_FILES,
    check_kaggle_files,
    download_kaggle,
    extract_zip,
    find_kaggle_credentials,
    unpack_kaggle_archives,
)

__all__ = [
    "DATAVERSE_URL_ENV",
    "DEFAULT_DATAVERSE_URL",
    "KAGGLE_COMPETITION",
    "KAGGLE_FILES",
    "SWAN_SF_DOI",
    "SWAN_SF_PARTITIONS",
    "Checksum",
    "DataverseFile",
    "ExtractedArchive",
    "check_kaggle_files",
    "download_file",
    "download_kaggle",
    "download_swan_sf",
    "extract_tar",
    "extract_zip",
    "file_checksum",
    "find_kaggle_credentials",
    "list_dataset_files",
    "parse_dataset_files",
    "resolve_base_url",
    "select_partition_files",
    "unpack_kaggle_archives",
]
