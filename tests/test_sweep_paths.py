"""dlrun sweep, the paths test_sweep.py leaves out: --trials with method tpe (the docs' example), the hyperband
pruner, timeout then grid exhaustion, a study started with another search refused, 3 failures in a row."""

from __future__ import annotations

import re

import pytest

from conftest import run_cli, write_spec
from test_sweep import NAME, load_study, states, sweep_spec


def test_tpe_from_the_docs_with_the_budget_from_the_command_line(tmp_path):
    # docs/sweeps.md's block, scaled down: smaller layers, 1..2 epochs; --trials 2 overrides trials: 20
    params = {"train.lr.base": {"loguniform": [1.0e-4, 1.0e-1]},
              "train.optimizer.name": {"choice": ["adam", "sgd"]},
              "model.units": {"choice": [[16], [32, 16]]},
              "model.dropout": {"uniform": [0.0, 0.5]},
              "train.epochs": {"int": [1, 2]}}
    path = write_spec(tmp_path, sweep_spec(tmp_path, method="tpe", trials=20, params=params))
    proc = run_cli("sweep", path, "--trials", "2", check_code=0, timeout=600)
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
def test_hyperband_stops_the_bad_trials_of_its_bracket(tmp_path, capsys):
    from runner.sweep.study import run_sweep

    spec = sweep_spec(tmp_path, epochs=3, method="grid", trials=4,
                      pruner={"name": "hyperband", "min_epochs": 1, "reduction_factor": 2},
                      params={"train.lr.base": {"choice": [0.01, 0.003, 1.0e-6, 1.0e-7]}})
    spec["seed"] = 1
    assert run_sweep(write_spec(tmp_path, spec)) == 0
    study = load_study(tmp_path)
    print({t.number: (t.state.name, t.params, dict(t.intermediate_values)) for t in study.trials})
    assert states(study) == ["COMPLETE"] * 4


def test_timeout_stops_starting_trials_and_a_rerun_finishes_the_grid(tmp_path, capsys):
    from runner.sweep.study import run_sweep

    # every trial takes over a second (TensorFlow builds the model): after the first, the timeout has passed
    spec = sweep_spec(tmp_path, method="grid", trials=5, timeout=1,
                      params={"train.lr.base": {"choice": [0.01, 0.003]}})
    assert run_sweep(write_spec(tmp_path, spec)) == 0
    out, err = capsys.readouterr()
    assert states(load_study(tmp_path)) == ["COMPLETE"]
    assert "dlrun sweep: timeout of 1 s reached; rerun the command to go on" in err
    assert "finished 1/5 (1 complete, 0 pruned), 0 running, 0 queued, 0 failed" in out.splitlines()

    spec["sweep"]["timeout"] = None  # not part of the search: the same study goes on
    assert run_sweep(write_spec(tmp_path, spec)) == 0
    out, err = capsys.readouterr()
    study = load_study(tmp_path)
    assert states(study) == ["COMPLETE", "COMPLETE"]
    assert sorted(t.params["train.lr.base"] for t in study.trials) == [0.003, 0.01]
    assert "dlrun sweep: every grid point has been tried" in err
    assert "finished 2/5 (2 complete, 0 pruned), 0 running, 0 queued, 0 failed" in out.splitlines()


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
    proc = run_cli("sweep", write_spec(tmp_path, changed, "changed.yaml"), check_code=2, timeout=120)
    assert proc.stderr.splitlines()[-1] == (
        f"sweep: the study '{NAME}' in {url} was started with another search (metric, params differ); restore the "
        "sweep block, or start a new study with another name or --storage")
    assert states(load_study(tmp_path)) == []


def test_three_failed_trials_in_a_row_abort_the_sweep(tmp_path, capsys):
    from runner.kernel.errors import TrainingError
    from runner.sweep.study import run_sweep

    # Adam at 1e7..1e8 diverges in every trial's first call: the spec, not the values, is broken
    spec = sweep_spec(tmp_path, trials=5, params={"train.lr.base": {"loguniform": [1.0e7, 1.0e8]}})
    with pytest.raises(TrainingError) as caught:
        run_sweep(write_spec(tmp_path, spec))
    assert caught.value.exit_code == 4
    assert re.fullmatch(r"3 trials failed in a row; the last: training failed: non-finite loss nan at epoch 1, "
                        r"step \d+; .*", caught.value.message), caught.value.message
    assert states(load_study(tmp_path)) == ["FAIL"] * 3
    failed = [line for line in capsys.readouterr().err.splitlines() if " failed: " in line]
    assert [line.split(" failed: ")[0] for line in failed] == [f"dlrun sweep: trial {i}" for i in range(3)]
