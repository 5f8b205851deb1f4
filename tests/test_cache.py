"""The bounded-memory path: one-pass preparation statistics, the memory-mapped cache, and
training from it giving the model the in-memory path gives."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from flareseq.data.cache import CachedArray, CacheWriter, cache_key, read_meta
from flareseq.data.store import write_store
from flareseq.data.synthetic import synthetic_dataset
from flareseq.errors import ConfigError, FlareseqError
from flareseq.experiments.cached_run import check_cacheable, fit_cached_run, needs_cache, prepare_cached_run
from flareseq.experiments.config import RunConfig
from flareseq.experiments.rundata import load_source, prepare_run_data
from flareseq.experiments.single import build_classifier
from flareseq.prep.missing import MissingValues, interpolate_in_time
from flareseq.prep.preparation import Preparation
from flareseq.prep.scaling import Scaler
from flareseq.prep.streaming import PreparationStats
from flareseq.training.loop import SHUFFLE_BLOCK, SHUFFLE_WINDOW, BatchSampler
from flareseq.training.settings import TrainingSettings

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """A store of 900 synthetic samples in three folds, with missing values."""
    dataset = synthetic_dataset(900, seed=3)
    assert dataset.n_missing_values > 0
    path = tmp_path_factory.mktemp("cache") / "store"
    write_store(dataset, path)
    return path


def _config(store: Path, **overrides) -> RunConfig:
    return RunConfig().with_overrides({"data.path": str(store), "model.name": "lstm", "training.epochs": 2,
                                       "model.params": {"hidden_size": 8}, "training.n_threads": 1, **overrides})


# -- statistics in one pass ---------------------------------------------------------------------
@pytest.mark.parametrize("scaler", ["zscore", "signed-log"])
def test_streamed_statistics_equal_the_in_memory_ones(store, scaler):
    config = _config(store, **{"prep.scaler": scaler})
    in_memory = prepare_run_data(config, load_source(config.data))
    fitted = Preparation(scaler).fit(in_memory.train)
    streamed = prepare_cached_run(config.with_overrides({"data.memory_budget_mb": 1})).preparation
    # the same floats: the store read block by block and the array cut into blocks
    np.testing.assert_array_equal(streamed.missing_.medians_, fitted.missing_.medians_)
    np.testing.assert_array_equal(streamed.scaler_.mean_, fitted.scaler_.mean_)
    np.testing.assert_array_equal(streamed.scaler_.scale_, fitted.scaler_.scale_)
    # and the right ones: numpy over the whole filled array
    naive_fill = MissingValues("interpolate").fit(in_memory.train.X)
    np.testing.assert_array_equal(streamed.missing_.medians_, naive_fill.medians_)
    naive = Scaler(signed_log=scaler == "signed-log").fit(naive_fill.transform(in_memory.train.X))
    np.testing.assert_allclose(streamed.scaler_.mean_, naive.mean_, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(streamed.scaler_.scale_, naive.scale_, rtol=1e-12)


def test_block_boundaries_do_not_change_the_median_subsample(monkeypatch):
    """More rows than the subsample holds: every k-th row of the whole set, however cut."""
    import flareseq.prep.streaming as streaming

    monkeypatch.setattr(streaming, "MEDIAN_ROWS", 500)
    rng = np.random.default_rng(1)
    X = rng.standard_normal((101, 7, 3)).astype(np.float32)
    X[rng.random(X.shape) < 0.1] = np.nan
    medians = []
    for cuts in ([101], [1, 50, 50], [13] * 7 + [10]):
        stats = PreparationStats(("a", "b", "c"), 7, 101)
        start = 0
        for size in cuts:
            stats.add(X[start : start + size])
            start += size
        medians.append(stats.medians())
    assert stats.stride == 707 // 500 + 1
    np.testing.assert_array_equal(medians[0], medians[1])
    np.testing.assert_array_equal(medians[0], medians[2])
    rows = interpolate_in_time(X)[0].reshape(-1, 3)[:: stats.stride]
    np.testing.assert_array_equal(medians[0], np.nanmedian(rows.astype(np.float64), axis=0))


def test_statistics_refuse_a_wrong_total():
    stats = PreparationStats(("a",), 4, 10)
    stats.add(np.zeros((6, 4, 1), np.float32))
    with pytest.raises(FlareseqError, match="6 training samples were added, 10 announced"):
        stats.medians()
    with pytest.raises(FlareseqError, match="more training samples than the 10"):
        stats.add(np.zeros((5, 4, 1), np.float32))


# -- the same model both ways ---------------------------------------------------------------------
@pytest.mark.parametrize("batching", ["shuffle", "blocks"])
def test_training_from_the_cache_gives_the_in_memory_model(store, batching):
    config = _config(store, **{"training.batching": batching})
    run = prepare_run_data(config, load_source(config.data))
    in_memory = build_classifier(config, progress=False).fit(run.train, X_val=run.validation)
    cached = prepare_cached_run(config.with_overrides({"data.memory_budget_mb": 1}))
    assert [p.n_samples for p in cached.parts().values()] == [run.train.n_samples, run.validation.n_samples,
                                                              run.test.n_samples]
    from_cache = fit_cached_run(config, cached, progress=False)
    weights = from_cache.model_.state_dict()
    for name, tensor in in_memory.model_.state_dict().items():
        assert torch.equal(tensor, weights[name]), name
    np.testing.assert_array_equal(in_memory.predict_proba(run.test), from_cache.predict_proba_prepared(cached.test.X))
    # the cached model carries its preparation: raw data predicts as in memory
    np.testing.assert_array_equal(in_memory.predict_proba(run.test), from_cache.predict_proba(run.test))
    assert from_cache.threshold_ == in_memory.threshold_
    assert in_memory.history_["loss"] == from_cache.history_["loss"]


def test_the_cache_is_written_once_per_data_and_preparation(store):
    config = _config(store, **{"data.memory_budget_mb": 1})
    first = prepare_cached_run(config)
    again = prepare_cached_run(config)
    assert again.folder == first.folder and not again.written
    other = prepare_cached_run(config.with_overrides({"prep.scaler": "none"}))
    assert other.folder != first.folder and other.written
    root = first.folder.parent
    assert not [p for p in root.iterdir() if p.name.startswith(".")], "a temporary folder was left behind"
    assert read_meta(first.folder)["counts"]["train"] == first.train.n_samples


def test_needs_cache_follows_the_budget(store):
    assert not needs_cache(_config(store))  # 0: no limit
    assert needs_cache(_config(store, **{"data.memory_budget_mb": 1}))  # ~27 MB in memory > 1 MB
    assert not needs_cache(_config(store, **{"data.memory_budget_mb": 10_000}))
    with pytest.raises(ConfigError, match="memory_budget_mb must be an integer >= 0"):
        needs_cache(_config(store, **{"data.memory_budget_mb": -1}))


@pytest.mark.parametrize(("overrides", "match"), [
    ({"prep.layout": "study-rows", "prep.missing": "drop-rows"}, "prep.missing = 'drop-rows'"),
    ({"prep.train_fraction": 0.3}, "sampling"),
    ({"data.split": {"method": "region", "test_share": 0.2}}, "method 'fold'"),
    ({"data.cv": 3}, "a rotation"),
])
def test_what_the_cache_path_does_not_do_is_refused(store, overrides, match):
    with pytest.raises(ConfigError, match=match):
        check_cacheable(_config(store, **overrides))


# -- batches shuffled by blocks ----------------------------------------------------------------------
def test_block_shuffle_visits_every_sample_once_reading_few_blocks_at_a_time():
    n = 5 * SHUFFLE_BLOCK * SHUFFLE_WINDOW // 4 + 123
    settings = TrainingSettings(batching="blocks", batch_size=256)
    y = np.zeros(n, np.int8)
    sampler = BatchSampler(y, settings, np.random.default_rng(7))
    batches = list(sampler.epoch())
    assert len(batches) == sampler.n_steps() == -(-n // 256)
    seen = np.concatenate(batches)
    np.testing.assert_array_equal(np.sort(seen), np.arange(n))
    # a batch draws on one window of blocks, or two where a window's remainder carries over
    spans = [len(np.unique(b // SHUFFLE_BLOCK)) for b in batches]
    assert max(spans) <= 2 * SHUFFLE_WINDOW and np.median(spans) > 1
    # the order is the seed's: the same seed again gives it, another seed does not
    again = list(BatchSampler(y, settings, np.random.default_rng(7)).epoch())
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))
    other = list(BatchSampler(y, settings, np.random.default_rng(8)).epoch())
    assert not np.array_equal(batches[0], other[0])


# -- the cache files -------------------------------------------------------------------------
def _rss_kb() -> dict[str, int]:
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("RssFile:", "RssAnon:")):
            name, value = line.split(":")
            fields[name] = int(value.split()[0])
    if len(fields) < 2:
        pytest.skip("no RssFile/RssAnon in /proc/self/status")
    return fields


def test_reading_the_cache_keeps_resident_memory_bounded(tmp_path):
    rows, shape = 4096, (60, 25)  # 24.6 MB per 4096 rows; 98 MB in all
    with CacheWriter(tmp_path, "k") as writer:
        writer.write_blocks("X", (4 * rows, *shape), (np.full((rows, *shape), i, np.float32) for i in range(4)))
        folder = writer.commit({})
    X = CachedArray(folder / "X.npy")
    before = _rss_kb()
    grown = {"RssFile": 0, "RssAnon": 0}
    total = 0.0
    order = np.random.default_rng(0).permutation(len(X))
    for start in range(0, len(X), 512):  # at random, as training gathers, and in order, as prediction reads
        total += float(X[np.sort(order[start : start + 512])][:, 0, 0].sum())
        total += float(X[start : start + 512][:, 0, 0].sum())
        now = _rss_kb()
        grown = {k: max(grown[k], now[k] - before[k]) for k in grown}
    assert total == 2 * 4096 * sum(range(4))  # every value read back
    assert grown["RssFile"] * 1024 < 8 << 20, f"mapped file pages grew by {grown['RssFile'] / 1024:.0f} MB"
    assert grown["RssAnon"] * 1024 < 24 << 20, f"private memory grew by {grown['RssAnon'] / 1024:.0f} MB"


def test_rows_read_by_any_index_are_the_arrays_rows(tmp_path):
    values = np.arange(7 * 3 * 2, dtype=np.float32).reshape(7, 3, 2)
    with CacheWriter(tmp_path, "k") as writer:
        writer.write_blocks("X", values.shape, [values[:4], values[4:]])
        folder = writer.commit({})
    X = CachedArray(folder / "X.npy")
    assert (len(X), X.shape, X.ndim) == (7, (7, 3, 2), 3)
    for index in (np.array([0, 1, 2, 5, 6]), np.array([6, 0, 3, 3]), slice(2, 5), slice(None, None, 3), -1, 4,
                  np.array([True, False] * 3 + [True]), np.array([-1, -7])):
        np.testing.assert_array_equal(X[index], values[index])
    np.testing.assert_array_equal(np.asarray(X), values)
    with pytest.raises(IndexError):
        X[np.array([7])]


def test_a_damaged_cache_file_is_an_error_naming_it(tmp_path):
    with CacheWriter(tmp_path, "k") as writer:
        writer.write_blocks("X", (10, 3, 2), [np.ones((10, 3, 2), np.float32)])
        folder = writer.commit({})
    path = folder / "X.npy"
    with open(path, "r+b") as handle:
        handle.truncate(os.path.getsize(path) - 4)
    with pytest.raises(FlareseqError, match="X.npy: expected .* the cache is damaged"):
        CachedArray(path)


def test_a_failed_write_removes_only_its_own_folder(tmp_path):
    (tmp_path / "keep.txt").write_text("not ours")
    with pytest.raises(FlareseqError, match="9 rows written, 10 expected"):
        with CacheWriter(tmp_path, "k") as writer:
            writer.write_blocks("X", (10, 3, 2), [np.ones((9, 3, 2), np.float32)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]
    assert cache_key(a=1) != cache_key(a=2) and cache_key(a=1, b=2) == cache_key(b=2, a=1)


def test_reading_a_store_whole_over_the_budget_is_refused(store):
    config = _config(store, **{"data.memory_budget_mb": 1})
    with pytest.raises(ConfigError, match=r"reading this store whole takes about 27 MB, over data.memory_budget_mb = 1"):
        prepare_run_data(config)
    assert prepare_run_data(_config(store, **{"data.memory_budget_mb": 100})).train.n_samples > 0


def test_a_killed_writers_temporary_folder_is_removed_by_the_next_writer(tmp_path):
    import subprocess
    import sys

    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True)
    dead = tmp_path / f".k.tmp-{int(finished.stdout)}-deadbeef"   # its writer no longer runs
    live = tmp_path / f".k.tmp-{os.getpid()}-cafecafe"            # a writer that still runs
    other = tmp_path / ".other.tmp-1-x"                            # another key: not ours to judge
    for folder in (dead, live, other):
        folder.mkdir()
        (folder / "train.npy").write_bytes(b"partial")
    with CacheWriter(tmp_path, "k") as writer:
        writer.save("train_y", np.zeros(3, dtype=np.float32))
        writer.commit({"n": 3})
    assert not dead.exists() and live.is_dir() and other.is_dir()
