"""dlrun sweep, the paths test_sweep.py leaves out: --trials with method tpe (the docs' example), the hyperband
pruner, timeout then grid exhaustion, a study started with another search refused, 3 failures in a row."""

from __future__ import annotations

import re

import pytest

from helpers import run_inline, write_spec
from helpers import NAME, load_study, states, sweep_spec


def test_tpe_from_the_docs_with_the_budget_from_the_command_line(tmp_path):
    # docs/sweeps.md's block, scaled down: smaller layers, 1..2 epochs; --trials 2 overrides trials: 20
    params = {"train.lr.base": {"loguniform": [1.0e-4, 1.0e-1]},
              "train.optimizer.name": {"choice": ["adam", "sgd"]},
              "model.units": {"choice": [[16], [32, 16]]},
              "model.dropout": {"uniform": [0.0, 0.5]},
              "train.epochs": {"int": [1, 2]}}
    path = write_spec(tmp_path, sweep_spec(tmp_path, method="tpe", trials=20, params=params))
    proc = run_inline("sweep", path, "--trials", "2", check_code=0)
    study = load_study(tmp_path)
    assert states(study) == ["COMPLETE", "COMPLETE"]
    for trial in study.trials:
        p = trial.params
        assert set(p) == set(params)
        assert 1.0e-4 <= p["train.lr.base"] <= 1.0e-1 and 0.0 <= p["model.dropout"] <= 0.5
        assert p["train.optimizer.name"] in ("adam", "sgd") and p["model.units"] in ("[16]", "[32, 16]")
        assert p["train.epochs"] in (1, 2)
    lines = proc.stdout.splitlines()
    db = tmp_path / "runs" / NAME / "sweep.db"
    assert lines[0] == f"sweep {NAME}: tpe, maximize val_accuracy; storage sqlite:///{db}"
    assert lines[1] == "finished 2/2 (2 complete, 0 pruned), 0 running, 0 queued, 0 failed"


@pytest.mark.slow
def test_hyperband_stops_a_clearly_bad_trial_at_its_first_rung(tmp_path, capsys):
    from runner.sweep.study import make_pruner, run_sweep

    # The first trial fixes max_resource (its last epoch + 1 = 4); from 2 epochs by thirds that is one bracket
    # with one rung, at epoch 2, where the best third (at least the best one) of the trials there go on. Seed 5
    # orders this grid 0.01, 0.003, 1e-6: the second trial is alone at the rung, the third meets it there
    spec = sweep_spec(tmp_path, epochs=3, method="grid", trials=3,
                      pruner={"name": "hyperband", "min_epochs": 2, "reduction_factor": 3},
                      params={"train.lr.base": {"choice": [0.01, 0.003, 1.0e-6]}})
    spec["seed"] = 5
    path = write_spec(tmp_path, spec)
    from runner.spec import load_config

    pruner = make_pruner(load_config(path)[0].sweep)
    assert (type(pruner).__name__, pruner._min_resource, pruner._reduction_factor) == ("HyperbandPruner", 2, 3)
    summary = run_sweep(path).splitlines()
    assert summary[-1].startswith("best spec: ")
    assert "finished 3/3 (2 complete, 1 pruned), 0 running, 0 queued, 0 failed" in summary
    study = load_study(tmp_path)
    assert states(study) == ["COMPLETE", "COMPLETE", "PRUNED"]
    first, rival, bad = study.trials
    assert [t.params["train.lr.base"] for t in study.trials] == [0.01, 0.003, 1.0e-6]
    assert sorted(rival.intermediate_values) == [1, 2, 3] and sorted(bad.intermediate_values) == [1, 2]
    assert bad.intermediate_values[2] < rival.intermediate_values[2]
    assert "dlrun sweep: trial 2: pruned after 2 epochs" in capsys.readouterr().err


def test_timeout_stops_starting_trials_and_a_rerun_finishes_the_grid(tmp_path, capsys):
    from runner.sweep.study import run_sweep

    # every trial takes over a second (TensorFlow builds the model): after the first, the timeout has passed
    spec = sweep_spec(tmp_path, method="grid", trials=5, timeout=1,
                      params={"train.lr.base": {"choice": [0.01, 0.003]}})
    summary = run_sweep(write_spec(tmp_path, spec)).splitlines()
    assert summary[-1].startswith("best spec: ")
    assert states(load_study(tmp_path)) == ["COMPLETE"]
    assert "dlrun sweep: timeout of 1 s reached; rerun the command to go on" in capsys.readouterr().err
    assert "finished 1/5 (1 complete, 0 pruned), 0 running, 0 queued, 0 failed" in summary

    spec["sweep"]["timeout"] = None  # not part of the search: the same study goes on
    summary = run_sweep(write_spec(tmp_path, spec)).splitlines()
    assert summary[-1].startswith("best spec: ")
    study = load_study(tmp_path)
    assert states(study) == ["COMPLETE", "COMPLETE"]
    assert sorted(t.params["train.lr.base"] for t in study.trials) == [0.003, 0.01]
    assert "dlrun sweep: every grid point has been tried" in capsys.readouterr().err
    assert "finished 2/5 (2 complete, 0 pruned), 0 running, 0 queued, 0 failed" in summary


def test_a_study_started_with_another_search_is_refused(tmp_path):
    from runner.spec import load_config
    from runner.sweep.study import open_study, storage_url

    first = sweep_spec(tmp_path)
    cfg, _ = load_config(write_spec(tmp_path, first, "first.yaml"))
    url = storage_url(cfg, None)
    open_study(cfg, url)
    same = {**first, "sweep": {**first["sweep"], "trials": 9, "timeout": 60}}  # budget and time: same search
    assert open_study(load_config(write_spec(tmp_path, same, "same.yaml"))[0], url).study_name == NAME
    changed = {**first, "sweep": {**first["sweep"], "metric": "val_loss",
                                  "params": {"train.lr.base": {"loguniform": [1.0e-3, 1.0e-1]}}}}
    proc = run_inline("sweep", write_spec(tmp_path, changed, "changed.yaml"), check_code=2)
    assert proc.stderr.splitlines()[-1] == (
        f"sweep: the study '{NAME}' in {url} was started with another search (metric, params differ); restore the "
        "sweep block, or start a new study with another name or --storage")
    assert states(load_study(tmp_path)) == []


def test_three_failed_trials_in_a_row_abort_the_sweep(tmp_path, capsys):
    from runner.kernel.errors import TrainingError
    from runner.sweep.study import run_sweep

    # SGD at 1e10..1e11 diverges in every trial's first call: the spec, not the values, is broken
    spec = sweep_spec(tmp_path, trials=5, params={"train.lr.base": {"loguniform": [1.0e10, 1.0e11]}})
    spec["train"]["optimizer"] = "sgd"
    with pytest.raises(TrainingError) as caught:
        run_sweep(write_spec(tmp_path, spec))
    assert caught.value.exit_code == 4
    assert re.fullmatch(r"3 trials failed in a row; the last: training failed: non-finite loss nan at epoch 1, "
                        r"step \d+; .*", caught.value.message), caught.value.message
    assert states(load_study(tmp_path)) == ["FAIL"] * 3
    failed = [line for line in capsys.readouterr().err.splitlines() if " failed: " in line]
    assert [line.split(" failed: ")[0] for line in failed] == [f"dlrun sweep: trial {i}" for i in range(3)]
