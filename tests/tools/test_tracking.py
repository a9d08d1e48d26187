"""Plots in the run directory, `dlrun ls` / `compare` / `env`, env.json, and the non-loopback warning."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from helpers import ROOT, digits_spec, run_cli, write_spec

GIT = ["git", "-c", "user.name=dlrun-test", "-c", "user.email=test@example.invalid"]
COMPLETED, FAILED, RUNNING = "20260101-100000-aaaaaa", "20260101-110000-bbbbbb", "20260101-120000-cccccc"


def _train(spec_path, run_path):
    from runner.kernel import run_dir as rd
    from runner.spec import load_config
    from runner.run.experiment import run_experiment

    cfg, _ = load_config(str(spec_path), [])
    return run_experiment(cfg, rd.RunDir.at(str(run_path)), spec_path=str(spec_path))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """runs/digits-test/ with a completed run and a failed one (non-finite loss), specs in a git repository."""
    from runner.kernel.errors import TrainingError

    repo = tmp_path_factory.mktemp("repo")
    root = repo / "runs"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    spec = digits_spec(root, train={"epochs": 2, "optimizer": "adam", "lr": {"schedule": "constant", "base": 0.003}})
    good = write_spec(repo, spec, "good.yaml")
    spec["train"]["lr"]["base"] = 1.0e12
    bad = write_spec(repo, spec, "bad.yaml")
    subprocess.run([*GIT, "-C", str(repo), "add", "."], check=True)
    subprocess.run([*GIT, "-C", str(repo), "commit", "-q", "-m", "specs"], check=True)
    completed = _train(good, root / "digits-test" / COMPLETED)
    with pytest.raises(TrainingError, match="non-finite loss"):
        _train(bad, root / "digits-test" / FAILED)
    return repo, root, completed


def _pixels(path):
    from PIL import Image

    return np.asarray(Image.open(path).convert("L"), dtype=np.float32)


def test_plots_in_the_run_directory(runs):
    import keras

    from runner.spec import load_config
    from runner.data.build import build_data
    from runner.data.pipeline import eval_dataset
    from runner.models import outputs_logits
    from runner.artifacts.plots import confusion_matrix, learning_curves, read_history

    _, _, completed = runs
    run = completed.run_dir.path
    for name in ("learning_curves.png", "confusion_matrix.png"):
        pixels = _pixels(run / name)
        assert pixels.shape[0] > 300 and pixels.std() > 10, name

    history = read_history(run / "history.csv")
    fig = learning_curves(history)
    titled = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in titled] == ["loss", "accuracy"]
    assert [line.get_label() for line in titled[0].lines] == ["train loss", "validation loss"]
    assert list(titled[0].lines[1].get_ydata()) == [r["val_loss"] for r in history]
    assert [ax.get_ylabel() for ax in fig.axes if ax not in titled] == ["learning rate"]

    cfg, _ = load_config(str(run / "config.yaml"), [])
    data = build_data(cfg.data, cfg.seed)
    model = keras.saving.load_model(run / "model.keras")
    cm = confusion_matrix(model, eval_dataset(data.splits["validation"], cfg.data, lambda y: y), 10,
                          outputs_logits(model))
    assert cm.shape == (10, 10) and cm.sum() == 180
    assert np.trace(cm) / 180 == pytest.approx(completed.metrics["validation"]["accuracy"], abs=1e-6)


def test_ls_shows_completed_failed_and_running_runs(runs, tmp_path):
    repo, root, completed = runs
    running = root / "digits-test" / RUNNING
    proc = subprocess.Popen([sys.executable, "-m", "runner", "train", str(repo / "good.yaml"), "--run-dir",
                             str(running), "--set", "train.epochs=1000"], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while not _epochs_done(running):
            assert proc.poll() is None and time.monotonic() < deadline, "the background run never ran an epoch"
            time.sleep(0.5)
        table = run_cli("ls", root, check_code=0).stdout.splitlines()
        listed = json.loads(run_cli("ls", "--json", root, check_code=0).stdout)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # the status file still says running; the dead pid in its lock file says otherwise
    after_kill = json.loads(run_cli("ls", "--json", root, check_code=0).stdout)
    assert [r["state"] for r in after_kill] == ["interrupted", "failed", "completed"]
    assert table[0].split() == ["run", "name", "state", "epochs", "best", "test", "train_s", "wall_s"]
    assert [line.split()[:3] for line in table[1:]] == [
        [f"digits-test/{RUNNING}", "digits-test", "running"], [f"digits-test/{FAILED}", "digits-test", "failed"],
        [f"digits-test/{COMPLETED}", "digits-test", "completed"]]
    metrics = completed.metrics
    assert table[3].split()[3:] == ["2", f"val_accuracy={metrics['best']['value']:.4g}",
                                    f"accuracy={metrics['test']['accuracy']:.4g}",
                                    f"loss={metrics['test']['loss']:.4g}",
                                    "-" if metrics.get("train_s") is None else f"{metrics['train_s']:.1f}",
                                    f"{metrics['wall_s']:.1f}"]
    assert [set(r) for r in listed] == [{"run_dir", "name", "state", "epochs", "best", "test", "train_s",
                                         "wall_s"}] * 3
    assert [(r["run_dir"], r["state"]) for r in listed] == [
        (str(root / "digits-test" / RUNNING), "running"), (str(root / "digits-test" / FAILED), "failed"),
        (str(root / "digits-test" / COMPLETED), "completed")]
    assert listed[0]["epochs"] >= 1 and listed[0]["best"] is None
    assert (listed[1]["epochs"], listed[1]["best"], listed[1]["test"]) == (0, None, None)
    assert listed[2]["best"] == metrics["best"] and listed[2]["test"] == metrics["test"]
    assert listed[2]["wall_s"] == pytest.approx(metrics["wall_s"])


def _epochs_done(run) -> bool:
    try:
        status = json.loads((run / "status.json").read_text())
    except (OSError, ValueError):
        return False
    return status["state"] == "running" and status["epoch"] >= 1


def test_ls_json_of_an_empty_folder_and_a_missing_one(tmp_path):
    assert json.loads(run_cli("ls", "--json", tmp_path, check_code=0).stdout) == []
    assert run_cli("ls", tmp_path, check_code=0).stdout == f"no runs under {tmp_path}\n"
    proc = run_cli("ls", tmp_path / "nope", check_code=2)
    assert proc.stderr == (f"{tmp_path / 'nope'}: no such directory; pass the folder that holds your runs "
                           "(output.dir, default 'runs')\n")


def test_compare_shows_config_differences_and_metrics(runs):
    _, root, completed = runs
    a, b = root / "digits-test" / COMPLETED, root / "digits-test" / FAILED
    out = run_cli("compare", a, b, check_code=0).stdout.splitlines()
    assert out[0] == "config differences:"
    assert out[1].split() == [f"digits-test/{COMPLETED[:15]}", f"digits-test/{FAILED[:15]}"]
    assert out[2].split() == ["train.lr.base", "0.003", "1000000000000.0"]
    assert out[3] == ""  # the learning rate is the only difference
    rows = {line.split()[0] + " " + line.split()[1]: line.split()[2:] for line in out[5:] if len(line.split()) > 3}
    metrics = completed.metrics
    assert rows["best val_accuracy"] == [f"{metrics['best']['value']:.4g}", "-"]
    assert rows["test accuracy"] == [f"{metrics['test']['accuracy']:.4g}", "-"]
    assert [line.split()[1:] for line in out if line.startswith("state")] == [["completed", "failed"]]
    proc = run_cli("compare", a, root, check_code=2)
    assert proc.stderr == (f"{root}: not a run directory (no config.yaml); `dlrun ls` lists the runs you can "
                           "compare\n")


def test_env_json_and_dlrun_env(runs, tmp_path):
    import keras

    from runner.distribute.environment import git_info

    repo, _, completed = runs
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    env = json.loads((completed.run_dir.path / "env.json").read_text())
    assert env["git"] == {"commit": head.strip(), "dirty": True}  # runs/ is untracked in the repository
    assert (env["strategy"], env["replicas"]) == ("_DefaultDistributionStrategy", 1)
    assert env["versions"]["keras"] == keras.__version__ and env["hostname"] == socket.gethostname()
    assert env["devices"][0]["type"] == "CPU"
    assert git_info(tmp_path) is None

    def root_head() -> str:
        return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout

    before = root_head()
    here = json.loads(run_cli("env", check_code=0).stdout)
    assert here["command_line"][1:] == ["env"]
    assert (here["strategy"], here["replicas"]) == ("_DefaultDistributionStrategy", 1)
    assert here["git"]["commit"] in {before.strip(), root_head().strip()}  # others may commit meanwhile
    assert set(here) >= {"versions", "python", "hostname", "platform", "devices", "tensorflow_build"}


def test_tensorboard_warns_when_bound_beyond_loopback(tmp_path):
    from runner.tools.tensorboard import is_loopback

    assert [is_loopback(h) for h in ("127.0.0.1", "localhost", "::1", "0.0.0.0")] == [True, True, True, False]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "runner", "tensorboard", str(tmp_path), "--host", "0.0.0.0",
                             "--port", str(port)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    try:
        first = proc.stderr.readline()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert first == (f"warning: --host 0.0.0.0: TensorBoard has no authentication; anyone who can reach this "
                     f"machine on port {port} can read every run under {tmp_path}. Prefer the default 127.0.0.1 "
                     f"with an SSH tunnel (ssh -L {port}:127.0.0.1:{port} HOST)\n")


def test_tensorboard_on_a_taken_port_exits_5(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run_cli("tensorboard", tmp_path, "--port", port, check_code=5)
    assert proc.stderr.splitlines()[-1] == (f"TensorBoard did not start on 127.0.0.1:{port} (see the error above); "
                                            "pick another --port or --host")
