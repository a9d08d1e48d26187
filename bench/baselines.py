"""dlrun's recipes against scikit-learn's strong classical models, on identical splits of the bundled data sets.

    .venv/bin/python bench/baselines.py [--datasets digits,wine,...] [--seed-start S] [--seeds N]
                                        [--scheme holdout|kfold|both] [--json OUT] [--set KEY=VALUE ...]

Splits, so that anyone can recompute them from the seed s alone:
  holdout  StratifiedShuffleSplit(n_splits=1, test_size=0.25, random_state=s) on the whole data set
           (ShuffleSplit for the regression set, diabetes); train on the 75 %, score on the 25 %.
  kfold    StratifiedKFold(n_splits=5, shuffle=True, random_state=s) (KFold for diabetes); train on 4 folds,
           score on the fifth, every fold in turn.
Seeds run from --seed-start for --seeds values. The metric is accuracy, or -RMSE for diabetes: higher is better.

dlrun trains the recipe (experiments/<name>.yaml) through its CLI (`dlrun train`, in one worker process that
runs every split in turn), with the data replaced by an .npz of that split's rows (numpy source, no shuffle,
row-exact slices): the recipe's model, training, preprocessing and augmentation are kept. A recipe with a
validation split keeps its validation fraction, carved (StratifiedShuffleSplit, random_state=s) from the
training part only, never from the test rows. TensorBoard, backups and checkpoints are off in these runs: they
write files and change no weight.
The run's seed is s, as the classical models' random_state.

Classical models, each fitted on the training part only (hyperparameters by inner 5-fold cross-validation on it):
  classification  svc (RBF; C, gamma by CV), logistic_regression (C by CV), random_forest (500 trees),
                  hist_gradient_boosting (defaults); the SVC and logistic regression see standardized features
  regression      svr (RBF; C, gamma, epsilon by CV; standardized target), ridge (alpha by CV),
                  random_forest, hist_gradient_boosting
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

# name -> (task, recipe); the recipes are the ones a user runs, e.g. `dlrun experiments/wine.yaml`
DATASETS = {
    "digits": ("classification", "experiments/digits.yaml"),
    "iris": ("classification", "experiments/iris.yaml"),
    "wine": ("classification", "experiments/wine.yaml"),
    "breast_cancer": ("classification", "experiments/breast_cancer.yaml"),
    "diabetes": ("regression", "experiments/diabetes.yaml"),
}
SCHEMES = ("holdout", "kfold")
TEST_SIZE = 0.25
FOLDS = 5


def load(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The data set as dlrun's sklearn source yields it (digits: 8x8x1 images, raw values 0..16)."""
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")()
    x = np.asarray(bunch.data, dtype="float32")
    if name == "digits":
        x = x.reshape(-1, 8, 8, 1)
    task = DATASETS[name][0]
    y = np.asarray(bunch.target, dtype="float32" if task == "regression" else "int64")
    return x, y


def splits(y: np.ndarray, task: str, seed: int, scheme: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(train rows, test rows)] of one seed: one holdout split, or the 5 folds."""
    from sklearn.model_selection import KFold, ShuffleSplit, StratifiedKFold, StratifiedShuffleSplit

    classify = task == "classification"
    if scheme == "holdout":
        splitter = (StratifiedShuffleSplit if classify else ShuffleSplit)(
            n_splits=1, test_size=TEST_SIZE, random_state=seed)
    else:
        splitter = (StratifiedKFold if classify else KFold)(n_splits=FOLDS, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros((len(y), 1)), y))


def classical_models(task: str, n_features: int, seed: int) -> dict:
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.ensemble import (HistGradientBoostingClassifier, HistGradientBoostingRegressor,
                                  RandomForestClassifier, RandomForestRegressor)
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC, SVR

    # gamma around 1 / n_features, the 'scale' value for standardized features
    gammas = [g / n_features for g in (0.1, 0.3, 1.0, 3.0)]
    if task == "classification":
        inner = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
        return {
            "svc": GridSearchCV(make_pipeline(StandardScaler(), SVC()),
                                {"svc__C": [0.1, 1, 10, 100], "svc__gamma": gammas}, cv=inner),
            "logistic_regression": GridSearchCV(make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)),
                                                {"logisticregression__C": [0.01, 0.1, 1, 10, 100]}, cv=inner),
            "random_forest": RandomForestClassifier(n_estimators=500, random_state=seed),
            "hist_gradient_boosting": HistGradientBoostingClassifier(random_state=seed),
        }
    inner = KFold(n_splits=5, shuffle=True, random_state=seed)
    # the SVR's epsilon and C are in units of the target, so it sees the target standardized
    svr = TransformedTargetRegressor(make_pipeline(StandardScaler(), SVR()), transformer=StandardScaler())
    return {
        "svr": GridSearchCV(svr, {"regressor__svr__C": [0.1, 1, 10, 100], "regressor__svr__gamma": gammas,
                                  "regressor__svr__epsilon": [0.1, 0.5]},
                            cv=inner, scoring="neg_root_mean_squared_error"),
        "ridge": make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13))),
        "random_forest": RandomForestRegressor(n_estimators=500, random_state=seed),
        "hist_gradient_boosting": HistGradientBoostingRegressor(random_state=seed),
    }


def score(task: str, y_true: np.ndarray, y_pred: np.ndarray) -> float:
    from sklearn.metrics import accuracy_score, root_mean_squared_error

    if task == "classification":
        return float(accuracy_score(y_true, y_pred))
    return -float(root_mean_squared_error(y_true, y_pred))


def dlrun(*args: str) -> subprocess.CompletedProcess:
    """`dlrun ARGS` in a subprocess of its own."""
    done = subprocess.run([sys.executable, "-m", "runner", *args], cwd=ROOT, env=_env(), capture_output=True,
                          text=True)
    if done.returncode:
        raise SystemExit(f"baselines: dlrun {' '.join(args[:2])} failed ({done.returncode}):\n{done.stderr}")
    return done


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


# One process runs every training of the benchmark, one after another, each exactly as `python -m runner ARGS`
# would (the CLI's main, called with the arguments): TensorFlow starts once instead of once per split, which on a busy
# 2-core machine was a third of each run's wall time. dlrun's own sweeps and k-fold train many models in one
# process the same way. Each request is a JSON argv on stdin; the answer, the exit code, comes back on the
# process's original stdout, while what dlrun prints goes to stderr, a file.
WORKER = r"""
import json, os, sys
answers = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
from runner.cli.main import main
for line in sys.stdin:
    argv = json.loads(line)
    print("baselines: dlrun " + " ".join(argv[:2]), file=sys.stderr, flush=True)
    try:
        code = main(argv)  # with argv, main returns the code (as the program it would os._exit the worker)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException as e:
        print(repr(e), file=sys.stderr, flush=True)
        code = 1
    if "keras" in sys.modules:  # each run starts from a clean Keras state, as each fold of dlrun's k-fold does
        sys.modules["keras"].backend.clear_session()
    answers.write(json.dumps(code) + "\n")
    answers.flush()
"""


class Trainer:
    """The worker process above; `train(args)` is `dlrun train ARGS`."""

    def __init__(self, scratch: Path):
        self.log_path = scratch / "dlrun.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([sys.executable, "-c", WORKER], cwd=ROOT, env=_env(), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log, text=True)

    def train(self, *args: str) -> None:
        start = self.log_path.stat().st_size
        self.proc.stdin.write(json.dumps(["train", *args]) + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        if answer.strip() != "0":
            with open(self.log_path) as f:
                f.seek(start)
                raise SystemExit(f"baselines: dlrun train {args[0]} failed ({answer.strip() or 'no answer'}):\n"
                                 f"{f.read()[-3000:]}")

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()
        self.log.close()


def percent_span(text: str) -> float:
    """The share of the pool a percent split like '[70%:80%]' covers."""
    m = re.fullmatch(r"\[(?:(\d+)%)?:(?:(\d+)%)?\]", text)
    if not m:
        raise SystemExit(f"baselines: the recipe's split {text!r} is not a percent slice like '[70%:80%]'")
    return (int(m[2] or 100) - int(m[1] or 0)) / 100


def recipe_data(recipe: str, sets: list[str]) -> tuple[dict, float]:
    """The recipe's resolved data block, and the share of its training pool it validates on (0: none)."""
    import yaml

    data = yaml.safe_load(dlrun("render", recipe, *(arg for s in sets for arg in ("--set", s))).stdout)["data"]
    sp = data["splits"]
    if not sp.get("validation"):
        return data, 0.0
    val = percent_span(sp["validation"])
    return data, val / (val + percent_span(sp["train"]))


def write_split(path: Path, x, y, task: str, train, test, val_fraction: float, seed: int) -> dict:
    """Write rows `train` then rows `test` to the .npz `path`; the splits map that selects exactly them, the
    recipe's validation share (if any) carved from the training rows (StratifiedShuffleSplit, random_state=seed)."""
    from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit

    parts = [train]
    if val_fraction:
        splitter = (StratifiedShuffleSplit if task == "classification" else ShuffleSplit)(
            n_splits=1, test_size=val_fraction, random_state=seed)
        fit, val = next(splitter.split(np.zeros((len(train), 1)), y[train]))
        parts = [train[fit], train[val]]
    rows = np.concatenate([*parts, test])
    np.savez(path, x=x[rows], y=y[rows])
    # row-exact slices of the file, in its order (data.shuffle_split: false): train, validation, test
    a = len(parts[0])
    b = a + (len(parts[1]) if len(parts) > 1 else 0)
    return {"train": f"[:{a}]", "validation": f"[{a}:{b}]" if b > a else None, "test": f"[{b}:]"}


def dlrun_score(trainer: Trainer, recipe: str, sets: list[str], data: dict, val_fraction: float, task: str, x, y,
                train, test, seed: int, scratch: Path) -> float:
    """Train the recipe on rows `train` (its validation carved from them) and score it on rows `test`."""
    path = scratch / "split.npz"
    spec = {k: v for k, v in data.items() if k != "name"}  # `name` belongs to the sklearn source
    spec.update(source="numpy", path=str(path), shuffle_split=False,
                splits=write_split(path, x, y, task, train, test, val_fraction, seed))
    run_dir = scratch / "run"
    trainer.train(recipe, "--run-dir", str(run_dir), *(arg for s in sets for arg in ("--set", s)),
                  "--set", f"data={json.dumps(spec)}", "--set", f"seed={seed}", "--set", f"output.dir={scratch}",
                  "--set", "callbacks.tensorboard=null", "--set", "callbacks.backup=null",
                  "--set", "callbacks.checkpoint=null")
    test_metrics = json.loads((run_dir / "metrics.json").read_text())["test"]
    shutil.rmtree(run_dir)
    if task == "regression":
        return -test_metrics["rmse"]
    # Keras's accuracy is a float32 mean: back to a count of correct examples, so that ties are exact
    return round(test_metrics["accuracy"] * len(test)) / len(test)


def run_dataset(name: str, seeds: list[int], schemes: list[str], sets: list[str], log) -> dict:
    task, recipe = DATASETS[name]
    x, y = load(name)
    flat = x.reshape(len(x), -1)
    data, val_fraction = recipe_data(recipe, sets)
    out = {}
    with tempfile.TemporaryDirectory(prefix="baselines-") as scratch:
        trainer = Trainer(Path(scratch))
        try:
            for scheme in schemes:
                units = []  # one per split: {"seed", "fold", "n_test", "dlrun", name: score ...}
                for seed in seeds:
                    for fold, (train, test) in enumerate(splits(y, task, seed, scheme)):
                        started = time.perf_counter()
                        unit = {"seed": seed, "fold": fold, "n_test": len(test)}
                        for model_name, model in classical_models(task, flat.shape[1], seed).items():
                            model.fit(flat[train], y[train])
                            unit[model_name] = score(task, y[test], model.predict(flat[test]))
                        unit["dlrun"] = dlrun_score(trainer, recipe, sets, data, val_fraction, task, x, y, train,
                                                    test, seed, Path(scratch))
                        units.append(unit)
                        scores = ", ".join(f"{k} {v:.4f}" for k, v in unit.items() if k not in ("seed", "fold",
                                                                                                   "n_test"))
                        took = time.perf_counter() - started
                        log(f"{name} {scheme} seed {seed} fold {fold}: {scores} ({took:.0f} s)")
                out[scheme] = summarize(units, task)
        finally:
            trainer.close()
    return out


def summarize(units: list[dict], task: str) -> dict:
    """Means and std over the splits (population std, as scikit-learn's cross-validation reports it), the paired
    difference to the best classical model, and the splits dlrun wins, ties and loses."""
    names = [k for k in units[0] if k not in ("seed", "fold", "n_test", "dlrun")]
    col = {k: np.array([u[k] for u in units]) for k in ["dlrun", *names]}
    classical = {k: {"mean": float(col[k].mean()), "std": float(col[k].std())} for k in names}
    best = max(names, key=lambda k: classical[k]["mean"])
    diff = col["dlrun"] - col[best]
    mean_test = float(np.mean([u["n_test"] for u in units]))
    margin = float(diff.mean())
    margin = 0.0 if abs(margin) < 1e-9 else margin  # equal scores on every split, up to float sums
    # reaching the best model, or short by less than one test example where that model is perfect
    reaches = margin >= 0 or (task == "classification" and classical[best]["mean"] == 1.0
                              and -margin * mean_test < 1)
    seeds = sorted({u["seed"] for u in units})
    return {
        "dlrun": {"mean": float(col["dlrun"].mean()), "std": float(col["dlrun"].std()),
                  # the score of each seed (k-fold: its mean over the folds)
                  "per_seed": [float(np.mean([u["dlrun"] for u in units if u["seed"] == s])) for s in seeds]},
        "classical": classical,
        "best_classical": {"name": best, **classical[best]},
        "paired": {"mean": margin, "std": float(diff.std()), "wins": int((diff > 0).sum()),
                   "ties": int((diff == 0).sum()), "losses": int((diff < 0).sum()), "splits": len(units)},
        "n_test": mean_test,
        "reaches_best": bool(reaches),
        "splits": units,
    }


def table(results: dict, task_of) -> str:
    rows = ["| data set | scheme | dlrun | best classical | others | dlrun - best (paired) | dlrun wins / ties / "
            "losses | reaches best |", "|---|---|---:|---|---|---:|:-:|:-:|"]
    for name, schemes in results.items():
        digits = 2 if task_of(name) == "regression" else 4
        f = (lambda v: f"{v:.{digits}f}")
        for scheme, r in schemes.items():
            b, p = r["best_classical"], r["paired"]
            others = ", ".join(f"{k} {f(v['mean'])}" for k, v in r["classical"].items() if k != b["name"])
            rows.append(f"| {name} | {scheme} | {f(r['dlrun']['mean'])} ± {f(r['dlrun']['std'])} | {b['name']} "
                        f"{f(b['mean'])} ± {f(b['std'])} | {others} | {p['mean']:+.{digits}f} ± {f(p['std'])} | "
                        f"{p['wins']} / {p['ties']} / {p['losses']} | {'yes' if r['reaches_best'] else 'NO'} |")
    return "\n".join(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(DATASETS),
                        help=f"comma-separated, of {', '.join(DATASETS)} (default: all)")
    parser.add_argument("--seed-start", type=int, default=0)
    parser.add_argument("--seeds", type=int, default=5, help="how many seeds, from --seed-start")
    parser.add_argument("--scheme", choices=[*SCHEMES, "both"], default="both")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="dlrun's --set, applied to every recipe's runs (to measure a change before making it)")
    args = parser.parse_args(argv)
    names = args.datasets.split(",")
    unknown = [n for n in names if n not in DATASETS]
    if unknown:
        parser.error(f"unknown data set {unknown[0]!r}; choose from {', '.join(DATASETS)}")
    seeds = list(range(args.seed_start, args.seed_start + args.seeds))
    schemes = list(SCHEMES) if args.scheme == "both" else [args.scheme]

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    started = time.perf_counter()
    results = {}
    for name in names:
        results[name] = run_dataset(name, seeds, schemes, args.set, log)
        if args.json:  # after each data set, so that a long run leaves what it has
            write_json(args.json, results)
    print(table(results, lambda n: DATASETS[n][0]))
    print(f"\nseeds {seeds[0]}..{seeds[-1]}, {time.perf_counter() - started:.0f} s")
    return 0 if all(r["reaches_best"] for s in results.values() for r in s.values()) else 1


def write_json(path: str, results: dict) -> None:
    """{data set: the train/test (holdout) protocol's summary, the k-fold one under "kfold"}."""
    out = {}
    for name, schemes in results.items():
        first = schemes.get("holdout") or schemes["kfold"]
        out[name] = {**first, **({"kfold": schemes["kfold"]} if "holdout" in schemes and "kfold" in schemes else {})}
    Path(path).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
