"""Starting Spark for the Spark engine: the optional dependency, Java, and the session.

PySpark is the optional extra ``flareseq[spark]``; it drives a JVM, and Spark 4 needs Java 17
or newer. Both are checked before a session starts, because a missing or old Java otherwise
surfaces as a py4j gateway error that names neither.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from flareseq.errors import FlareseqError, MissingDependencyError

MIN_JAVA = 17
_JAVA_HINT = (f"Install Java {MIN_JAVA} or 21 (for example `apt install openjdk-17-jre-headless`, or "
              "https://adoptium.net) and put it on PATH or set JAVA_HOME; or use the local engine "
              "(leave out --engine spark).")
# Session settings the engine relies on, whatever the user's defaults: JSON objects with a
# repeated key keep the last value, as Python's json and orjson do (Spark's default policy
# fails the whole job instead).
ENGINE_SQL_CONF = {"spark.sql.mapKeyDedupPolicy": "LAST_WIN"}
# Defaults for a session the engine starts (the caller's `conf` wins): splits of 32 MB instead
# of 128 MB, so that a file of a few hundred MB keeps every core busy to the end.
NEW_SESSION_DEFAULTS = {"spark.sql.files.maxPartitionBytes": str(32 << 20)}


def import_pyspark():
    """The ``pyspark.sql`` module, or a :class:`MissingDependencyError` with the install command."""
    try:
        with warnings.catch_warnings():
            # pyspark warns at import about pandas versions; the engine never converts to pandas
            warnings.simplefilter("ignore", FutureWarning)
            import pyspark.sql
    except ImportError:
        raise MissingDependencyError("pyspark", "spark", "the Spark engine (--engine spark)") from None
    return pyspark.sql


def java_executable() -> str | None:
    """The ``java`` Spark will start: ``$JAVA_HOME/bin/java`` when JAVA_HOME is set, else PATH's."""
    home = os.environ.get("JAVA_HOME")
    if home:
        candidate = os.path.join(home, "bin", "java")
        return candidate if os.path.exists(candidate) else None
    return shutil.which("java")


def java_major_version(version_text: str) -> int | None:
    """The major version in ``java -version`` output (``"1.8.0_292"`` -> 8, ``"17.0.15"`` -> 17)."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_text)
    if match is None:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def check_java() -> int:
    """Java's major version; a :class:`FlareseqError` saying how to fix a missing or old Java."""
    java = java_executable()
    if java is None:
        where = f"JAVA_HOME={os.environ['JAVA_HOME']} has no bin/java" if os.environ.get("JAVA_HOME") else \
            "no `java` on PATH and JAVA_HOME is not set"
        raise FlareseqError(f"the Spark engine needs Java {MIN_JAVA} or newer; found none ({where}). {_JAVA_HINT}")
    try:
        result = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise FlareseqError(f"the Spark engine needs Java {MIN_JAVA} or newer; `{java} -version` failed "
                            f"({exc}). {_JAVA_HINT}") from None
    text = result.stderr + result.stdout
    major = java_major_version(text)
    if major is None or major < MIN_JAVA:
        found = f"Java {major}" if major is not None else f"unrecognised output {text.strip()[:80]!r}"
        raise FlareseqError(f"the Spark engine needs Java {MIN_JAVA} or newer; `{java} -version` gives {found}. "
                            f"{_JAVA_HINT}")
    return major


@contextmanager
def spark_session(master: str = "local[*]", *, spark=None, conf: Mapping[str, str] | None = None,
                  progress: bool = False, app_name: str = "flareseq-ingest") -> Iterator[object]:
    """A SparkSession for the duration of the block.

    ``spark`` (an existing session) is used as it is and left running; otherwise an active
    session is reused, or a new one is started on ``master`` (any Spark master URL) with
    ``conf`` and stopped at the end. The engine's SQL settings (:data:`ENGINE_SQL_CONF`) are
    set for the block and restored after it.
    """
    sql = import_pyspark()
    created = False
    if spark is None:
        spark = sql.SparkSession.getActiveSession()
    if spark is None:
        check_java()
        builder = sql.SparkSession.builder.master(master).appName(app_name)
        builder = builder.config("spark.ui.showConsoleProgress", "true" if progress else "false")
        for key, value in {**NEW_SESSION_DEFAULTS, **(conf or {})}.items():
            builder = builder.config(key, str(value))
        try:
            with warnings.catch_warnings():  # pyspark's pandas-version warning, see import_pyspark
                warnings.simplefilter("ignore", FutureWarning)
                spark = builder.getOrCreate()
        except Exception as exc:  # py4j/pyspark raise plain exceptions when the JVM does not start
            first_line = str(exc).strip().splitlines()[0][:300].rstrip(".") if str(exc).strip() else ""
            raise FlareseqError(f"Spark did not start on master {master!r}: {type(exc).__name__}: {first_line}. "
                                f"Check the master URL and Java {MIN_JAVA}+ (JAVA_HOME).") from None
        spark.sparkContext.setLogLevel("ERROR")
        created = True
    try:
        with sql_conf(spark, ENGINE_SQL_CONF):
            yield spark
    finally:
        if created:
            spark.stop()


@contextmanager
def sql_conf(spark, settings: Mapping[str, str]) -> Iterator[None]:
    """Set runtime SQL settings of ``spark`` for the block, then restore the previous values."""
    saved = {key: spark.conf.get(key, None) for key in settings}
    for key, value in settings.items():
        spark.conf.set(key, str(value))
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)
