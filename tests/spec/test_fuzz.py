"""Fuzzing `dlrun validate`: valid specs are accepted and `render` round-trips; mutants exit 2 with located lines."""

from __future__ import annotations

import contextlib
import copy
import io

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from runner.cli.main import main
from runner.language.load import display_path
from helpers import run_cli

CLASSIFICATION_METRICS = ["accuracy", "top5_accuracy", "precision", "recall", "f1", "auc"]
SPLITS = [{"train": "[:70%]", "validation": "[70%:80%]", "test": "[80%:]"},
          {"train": "[:80%]", "validation": "[80%:]", "test": None},
          {"train": "[:90%]", "validation": None, "test": "[90%:]"},
          {"train": "[50%:]", "validation": "[:25%]", "test": "[25%:50%]"}]
FUZZ_SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])



def _dump(spec) -> str:
    """YAML text of a spec, without anchors: the strategies reuse constant maps, which safe_dump would alias."""
    from runner.language.yaml12 import dump_yaml

    return dump_yaml(spec)


@st.composite
def valid_specs(draw) -> dict:
    """Specs that must validate: every value inside its range, the cross-field rules kept."""
    replicas = draw(st.integers(1, 4))
    data = {"source": "sklearn", "name": draw(st.sampled_from(["digits", "iris", "wine", "breast_cancer"])),
            "splits": draw(st.sampled_from(SPLITS)), "batch_size": replicas * draw(st.integers(1, 256)),
            "shuffle_buffer": draw(st.integers(1, 100_000)), "cache": draw(st.booleans())}
    images = data["name"] == "digits"  # image augmentations and mixing on a table are refused
    data["augment"] = draw(st.lists(st.sampled_from(["random_flip", "random_zoom", {"random_rotation": {"factor": 0.2}},
                                                     {"random_translation": {}}]), max_size=3 if images else 0))
    data["preprocess"] = draw(st.sampled_from([[], [{"rescale": {"scale": 0.0625}}], ["normalize"]]))
    if images and draw(st.booleans()):
        data["batch_augment"] = [{draw(st.sampled_from(["mixup", "cutmix"])): {"alpha": draw(st.floats(0.01, 5))}}]
    common = {"dropout": draw(st.floats(0, 0.99)), "batchnorm": draw(st.booleans()),
              "activation": draw(st.sampled_from(["relu", "gelu", "swish", "tanh"]))}
    if not images or draw(st.booleans()):  # an image arch on a table is refused too
        model = {"arch": "mlp", "units": draw(st.lists(st.integers(1, 512), min_size=1, max_size=3)), **common}
    else:
        model = {"arch": "cnn", "filters": draw(st.lists(st.integers(1, 64), min_size=1, max_size=3)),
                 "kernel_size": draw(st.integers(1, 5)), "pool": draw(st.sampled_from(["max", "avg", "none"])),
                 **common}
    epochs = draw(st.integers(1, 500))
    lr = draw(st.one_of(
        st.floats(1e-6, 10),
        st.builds(lambda base, warm: {"schedule": "cosine", "base": base, "warmup_epochs": warm * (epochs - 1)},
                  st.floats(1e-6, 10), st.floats(0, 0.99)),
        st.builds(lambda base: {"schedule": "constant", "base": base}, st.floats(1e-6, 10))))
    metrics = draw(st.one_of(st.none(), st.lists(st.sampled_from(CLASSIFICATION_METRICS), min_size=1, max_size=3,
                                                 unique=True)))
    loss = draw(st.one_of(st.sampled_from(["auto", "sparse_categorical_crossentropy"]),
                          st.builds(lambda s: {"name": "categorical_crossentropy", "label_smoothing": s},
                                    st.floats(0, 1))))
    train = {"epochs": epochs, "optimizer": draw(st.sampled_from(["adam", "sgd", {"name": "sgd", "momentum": 0.9},
                                                                  {"name": "adamw", "weight_decay": 1e-4}])),
             "lr": lr, "loss": loss, "metrics": metrics}
    logged = ["loss", *(metrics or ["accuracy"])]
    if data["splits"]["validation"]:
        logged += [f"val_{m}" for m in logged]
    callbacks = {"early_stopping": draw(st.one_of(st.none(), st.builds(
                     lambda p, m: {"patience": p, "monitor": m}, st.integers(0, 100), st.sampled_from(logged)))),
                 "tensorboard": {"update_freq": draw(st.one_of(st.just("epoch"), st.integers(1, 10_000)))}}
    distribute = {"strategy": "mirrored", "cpu_replicas": replicas} if replicas > 1 else {"strategy": "auto"}
    name = draw(st.from_regex(r"[a-z0-9._-]{1,40}", fullmatch=True).filter(lambda n: n not in (".", "..")))
    return {"name": name, "seed": draw(st.integers(0, 2**31 - 1)), "deterministic": draw(st.booleans()),
            "data": data, "model": model, "train": train, "callbacks": callbacks, "distribute": distribute,
            "output": {"dir": draw(st.sampled_from(["runs", "out/runs", "/tmp/dlrun-fuzz-runs"]))}}


junk = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12),
              st.sampled_from(["5", "no", "yes", "1e3", ".nan", "epoch", "[:50%]", "..", "adam", "relu", "", "a\0b"])),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=6)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, prefix + (i,))


@st.composite
def mutated_specs(draw) -> dict:
    """A valid spec with one to three edits: a key dropped, renamed or added, or a value replaced."""
    spec = copy.deepcopy(draw(valid_specs()))  # the strategies share constant maps; edit a copy
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from([p for p in _paths(spec) if p]))
        parent = spec
        for part in path[:-1]:
            parent = parent[part]
        last = path[-1]
        op = draw(st.sampled_from(["drop", "replace", "rename", "add"]))
        if op == "drop":
            parent.pop(last)
        elif op == "replace" or isinstance(parent, list):
            parent[last] = draw(junk)
        elif op == "rename":
            parent[draw(st.text(min_size=1, max_size=12)) if draw(st.booleans()) else last[:-1] or "x"] = \
                parent.pop(last)
        else:
            parent[draw(st.text(min_size=1, max_size=12))] = draw(junk)
    return spec


@st.composite
def mutated_texts(draw) -> bytes:
    """The YAML text of a valid spec with characters inserted, deleted or lines repeated."""
    text = _dump(draw(valid_specs()))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["insert", "delete", "line"]))
        if op == "insert":
            text = text[:at] + draw(st.text(alphabet=":-[]{}&*!|>'\"#%@`\t\n ,?~.0eE", min_size=1, max_size=3)) + \
                text[at:]
        elif op == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 10)):]
        else:
            lines = text.splitlines(keepends=True)
            i = draw(st.integers(0, len(lines) - 1))
            text = "".join(lines[:i + 1] + [draw(st.sampled_from(["  ", ""])) + lines[i]] + lines[i + 1:])
    raw = text.encode()
    return raw + b"\xff" if draw(st.integers(0, 30)) == 0 else raw


def _cli(*args) -> tuple[int, str, str]:
    """runner.cli.main in this process: (exit code, stdout, stderr); an uncaught exception fails the test."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([*map(str, args)])
    return code, out.getvalue(), err.getvalue()


def _check(path, expect=(0, 2)) -> int:
    """validate: accepted and round-tripping through render, or exit 2 with located lines."""
    code, out, err = _cli("validate", path)
    event(f"dlrun validate exit {code}")  # --hypothesis-show-statistics: the accepted/refused share
    assert code in expect, err
    assert code in (0, 2), (code, err)
    assert "Traceback" not in err
    if code == 0:
        assert (out, err) == (f"{path}: ok\n", "")
        rendered = _cli("render", path)[1]
        again = path.with_name("rendered.yaml")
        again.write_text(rendered)
        assert _cli("render", again) == (0, rendered, "")
    else:
        lines = err.splitlines()
        assert out == "" and lines
        for line in lines:
            assert line.startswith(display_path(path)) or line.startswith("... and up to "), line
    return code


@settings(max_examples=120, **FUZZ_SETTINGS)
@given(spec=valid_specs())
def test_valid_specs_are_accepted_and_render_round_trips(spec, tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(_dump(spec))
    _check(path, expect=(0,))


@settings(max_examples=150, **FUZZ_SETTINGS)
@given(spec=mutated_specs())
def test_mutated_specs_are_accepted_or_explained(spec, tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(_dump(spec))
    _check(path)


@settings(max_examples=100, **FUZZ_SETTINGS)
@given(raw=mutated_texts())
def test_mutated_text_is_accepted_or_explained(raw, tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_bytes(raw)
    _check(path)


@settings(max_examples=4, **FUZZ_SETTINGS)
@given(raw=mutated_texts())
def test_mutated_text_through_the_cli_process(raw, tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_bytes(raw)
    proc = run_cli("validate", path, timeout=60)
    # the process says exactly what the in-process CLI says: nothing is lost on the way out
    assert (proc.returncode, proc.stdout, proc.stderr) == _cli("validate", path)
    assert proc.returncode in (0, 2) and "Traceback" not in proc.stderr
