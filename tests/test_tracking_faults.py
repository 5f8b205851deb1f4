"""Tracking under faults: a killed run is marked when the experiment resumes; two processes
creating one new store do not race in MLflow's schema set-up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import mlflow

from flareseq.experiments.tracking import HOST_TAG, PID_TAG, MlflowTracker, resolve_tracking_uri


def test_a_run_whose_process_was_killed_is_marked_killed_on_resume(tmp_path):
    uri = resolve_tracking_uri("", tmp_path)
    script = textwrap.dedent(f"""
        import time
        from flareseq.experiments.tracking import MlflowTracker
        tracker = MlflowTracker({uri!r}, "faults")
        with tracker.run("doomed"):
            print("started", flush=True)
            time.sleep(600)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "started"
        os.kill(child.pid, signal.SIGKILL)  # kill -9: no chance to end the run
        child.wait(timeout=30)
    finally:
        child.kill()
    tracker = MlflowTracker(uri, "faults")
    client = mlflow.MlflowClient(uri)
    (run,) = client.search_runs([tracker.experiment_id])
    assert run.info.status == "RUNNING" and run.data.tags[PID_TAG] == str(child.pid) and run.data.tags[HOST_TAG]
    assert tracker.mark_dead_runs() == ["doomed"]
    run = client.get_run(run.info.run_id)
    assert run.info.status == "KILLED" and "ended without finishing" in run.data.tags["error"]
    assert tracker.mark_dead_runs() == []  # only once


def test_a_live_run_is_left_alone(tmp_path):
    uri = resolve_tracking_uri("", tmp_path)
    tracker = MlflowTracker(uri, "faults")
    with tracker.run("alive"):
        assert tracker.mark_dead_runs() == []  # its process (this one) is alive


def test_two_processes_on_a_brand_new_store_both_record_their_run(tmp_path):
    uri = resolve_tracking_uri("", tmp_path)
    script = textwrap.dedent(f"""
        import sys, time
        start = float(sys.argv[1])
        while time.time() < start:
            time.sleep(0.001)
        from flareseq.experiments.tracking import MlflowTracker
        tracker = MlflowTracker({uri!r}, "race")
        with tracker.run("run-" + sys.argv[2]):
            pass
    """)
    start = time.time() + 8  # both import MLflow first, then open the store at the same moment
    children = [subprocess.Popen([sys.executable, "-c", script, str(start), str(i)], stderr=subprocess.PIPE, text=True)
                for i in range(2)]
    errors = [child.communicate(timeout=180)[1] for child in children]
    assert [child.returncode for child in children] == [0, 0], errors
    experiment = mlflow.MlflowClient(uri).get_experiment_by_name("race")
    runs = mlflow.MlflowClient(uri).search_runs([experiment.experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["run-0", "run-1"]
