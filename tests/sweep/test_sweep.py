"""dlrun sweep: the `sweep:` block's checks, a killed sweep resumed to exactly its budget, two workers on one
SQLite study, pruning of a clearly bad trial, best.yaml and the HParams rows."""

from __future__ import annotations

import json
import os
import time

import pytest
import yaml

from helpers import NAME, ROOT, load_study, popen_sweep, run_cli, run_inline, states, sweep_spec, write_spec

def _line(lines: list[str], key: str, after: str = "") -> int:
    """The 1-based line of `key:` in a dumped spec, searching from the line of `after:`."""
    start = next(i for i, text in enumerate(lines) if text.strip().startswith(f"{after}:")) if after else 0
    return next(i for i, text in enumerate(lines[start:], start + 1) if text.strip().startswith(f"{key}:"))


def test_sweep_block_keys_and_domains_are_checked_by_validate(tmp_path):
    spec = sweep_spec(tmp_path, metric="val_acc", params={
        "train.lr.bas": {"choice": [0.01]},
        "train.lr.base": {"choice": [0.01, -1]},
        "model.depth": {"int": [1, 3]},
        "name": {"choice": ["other"]},
        "model.units": {"choice": [[16], [8, 8]]},
    })
    path = write_spec(tmp_path, spec)
    lines = path.read_text().splitlines()
    shown = os.path.relpath(path, ROOT)
    proc = run_cli("validate", path, check_code=2)
    assert proc.stderr.splitlines() == [
        f"{shown}:{_line(lines, 'metric')}: sweep.metric: not a logged metric; choose one of accuracy, loss, "
        "test_accuracy, test_loss, val_accuracy, val_loss; received 'val_acc'",
        f"{shown}:{_line(lines, 'train.lr.bas')}: sweep.params.train.lr.bas: value 0.01 is rejected: "
        "train.lr.bas: unknown key; did you mean 'base'?; received 0.01",
        f"{shown}:{_line(lines, 'train.lr.base')}: sweep.params.train.lr.base: value -1 is rejected: "
        "train.lr.base: must be > 0.0; received -1",
        f"{shown}:{_line(lines, 'model.depth')}: sweep.params.model.depth: value 1 is rejected: model.depth: "
        "'mlp' takes no depth; it applies to resnet, transformer, unet only; received 1",
        f"{shown}:{_line(lines, 'name', after='params')}: sweep.params.name: must be a dotted key of the spec "
        "other than name or sweep, such as train.lr.base; received 'name'",
    ], proc.stderr

    spec = sweep_spec(tmp_path, method="grid", heartbeat_interval=5, grace_period=5, metric="test_accuracy",
                      params={"train.lr.base": {"loguniform": [1.0e-3, 1.0e-2]}}, pruner="median")
    spec["data"]["splits"]["test"] = "[45%:]"
    path = write_spec(tmp_path, spec)
    lines = path.read_text().splitlines()
    proc = run_cli("validate", path, check_code=2)
    assert proc.stderr.splitlines() == [
        f"{shown}:{_line(lines, 'grace_period')}: sweep.grace_period: must be longer than heartbeat_interval "
        "(5 s); received 5",
        f"{shown}:{_line(lines, 'train.lr.base')}: sweep.params.train.lr.base: method grid needs a finite set of "
        "values: use a choice or int domain, or method random or tpe; received {'loguniform': [0.001, 0.01]}",
        f"{shown}:{_line(lines, 'pruner')}: sweep.pruner: pruning needs an epoch-end metric, and test_accuracy is "
        "measured once after training; use a val_ metric or pruner: null; received median",
    ], proc.stderr


def test_sweep_without_block_and_status_before_start(tmp_path):
    spec = sweep_spec(tmp_path)
    path = write_spec(tmp_path, spec)
    proc = run_cli("sweep", path, "--status", check_code=0)
    db = tmp_path / "runs" / NAME / "sweep.db"
    assert proc.stdout.strip() == f"sweep {NAME}: not started (no {db}); start it with `dlrun sweep {path}`"
    del spec["sweep"]
    bare = write_spec(tmp_path, spec, "bare.yaml")
    proc = run_cli("sweep", bare, check_code=2)
    assert proc.stderr.strip() == f"{bare}: no `sweep:` block; add one naming the keys to search (see docs/sweeps.md)"


@pytest.mark.slow
def test_killed_sweep_resumes_to_exactly_its_budget(tmp_path):
    path = write_spec(tmp_path, sweep_spec(tmp_path))
    trials = tmp_path / "runs" / NAME / "trials"
    proc = popen_sweep(path)
    deadline = time.monotonic() + 600  # generous: the CPU may be shared
    while not (trials.is_dir() and len(list(trials.iterdir())) >= 3):  # trial 3 has started
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.kill()
    proc.communicate()
    assert proc.returncode == -9
    study = load_study(tmp_path)
    assert states(study) == ["COMPLETE", "COMPLETE", "RUNNING"]  # what kill -9 leaves: a trial nobody runs
    killed = study.trials[2].params

    rerun = run_inline("sweep", path, check_code=0)
    study = load_study(tmp_path)
    # the dead trial is failed by its missing heartbeat and its values run again; no fifth trial starts
    assert sorted(states(study)) == ["COMPLETE"] * 4 + ["FAIL"]
    assert study.trials[2].state.name == "FAIL"
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    rerun_of_killed = [t for t in complete if t.system_attrs.get("failed_trial") == 2]
    assert len(rerun_of_killed) == 1 and rerun_of_killed[0].params == killed
    run_dirs = {t.user_attrs["run_dir"] for t in complete}
    assert len(run_dirs) == 4
    for run_dir in run_dirs:
        status = json.loads((tmp_path / run_dir / "status.json").read_text())
        assert status["state"] == "completed" and status["epoch"] == 1
        config = yaml.safe_load((tmp_path / run_dir / "config.yaml").read_text())
        assert config["sweep"] is None and config["name"] == NAME

    best_yaml = tmp_path / "runs" / NAME / "best.yaml"
    run_cli("validate", best_yaml, check_code=0)
    best = yaml.safe_load(best_yaml.read_text())
    assert best["train"]["lr"]["base"] == study.best_trial.params["train.lr.base"]
    assert best["model"]["units"] == json.loads(study.best_trial.params["model.units"])
    assert best["sweep"] is None
    assert f"best spec: {best_yaml}" in rerun.stdout

    status = run_cli("sweep", path, "--status", check_code=0).stdout.splitlines()
    assert status[1] == "finished 4/4 (4 complete, 0 pruned), 0 running, 0 queued, 1 failed"
    assert status[2] == f"best: trial {study.best_trial.number}, val_accuracy = {study.best_value:.6g}"
    assert status[4].split() == ["trial", "state", "val_accuracy", "epochs", "train.lr.base", "model.units", "run"]
    assert len(status) == 5 + 5

    # every trial is one HParams session of the sweep's folder, with its objective beside it
    from tensorboard.backend.event_processing import event_multiplexer
    from tensorboard.plugins.hparams import plugin_data_pb2

    mux = event_multiplexer.EventMultiplexer()
    mux.AddRunsFromDirectory(str(tmp_path / "runs" / NAME))
    mux.Reload()
    sessions = {}
    for run, data in mux.PluginRunToTagToContent("hparams").items():
        for content in data.values():
            info = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
            if info.hparams:
                sessions[run] = info.hparams["train.lr.base"].number_value
    assert sorted(sessions.values()) == sorted(t.params["train.lr.base"] for t in complete)
    objectives = {run for run, tags in mux.Runs().items() if "sweep/val_accuracy" in tags.get("tensors", [])}
    assert len(objectives) == 4


@pytest.mark.slow
def test_two_workers_share_one_sqlite_study(tmp_path):
    # a long grace period: on a busy CPU a live worker's heartbeat may be late, and nobody is killed here
    path = write_spec(tmp_path, sweep_spec(tmp_path, trials=3, heartbeat_interval=2, grace_period=60))
    workers = [popen_sweep(path), popen_sweep(path)]
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    study = load_study(tmp_path)
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(complete) == 3
    # a trial that lost the race for the last place never trained; nothing else failed
    assert all(t.user_attrs.get("surplus") for t in study.trials if t.state.name == "FAIL")
    assert len({t.user_attrs["run_dir"] for t in complete}) == 3
    assert sum("trial " in line and "->" in line for out in outputs for line in out.splitlines()) == 3


@pytest.mark.slow
def test_median_pruner_stops_a_clearly_bad_trial(tmp_path, capsys):
    from runner.sweep.study import run_sweep

    # seed 1 orders this grid 0.01 first: the bad trial meets a finished good one at its first epoch
    spec = sweep_spec(tmp_path, epochs=3, method="grid", trials=2, pruner={"name": "median", "startup_trials": 1},
                      params={"train.lr.base": {"choice": [0.01, 1.0e-6]}})
    spec["seed"] = 1
    path = write_spec(tmp_path, spec)
    summary = run_sweep(path)
    assert summary.splitlines()[-1].startswith("best spec: ")
    assert "finished 2/2 (1 complete, 1 pruned), 0 running, 0 queued, 0 failed" in summary
    study = load_study(tmp_path)
    assert states(study) == ["COMPLETE", "PRUNED"]
    good, bad = study.trials
    assert good.params == {"train.lr.base": 0.01} and bad.params == {"train.lr.base": 1.0e-6}
    assert sorted(good.intermediate_values) == [1, 2, 3]
    assert sorted(bad.intermediate_values) == [1]
    assert bad.intermediate_values[1] < good.intermediate_values[1]
    history = (tmp_path / bad.user_attrs["run_dir"] / "history.csv").read_text().splitlines()
    assert len(history) == 1 + 1  # header and the one epoch before the pruner stopped it
    assert "dlrun sweep: trial 1: pruned after 1 epoch\n" in capsys.readouterr().err
