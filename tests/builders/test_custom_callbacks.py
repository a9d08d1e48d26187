"""callbacks.custom: the form 'module:Class' is checked by validate without importing; the import at run start."""

from __future__ import annotations

import pytest

from helpers import digits_spec, run_cli, run_inline, write_spec


def _spec(tmp_path, custom) -> str:
    spec = digits_spec(tmp_path / "runs", train={"epochs": 1, "optimizer": "adam", "lr": 0.003},
                       callbacks={"tensorboard": None, "custom": custom})
    return write_spec(tmp_path, spec)


@pytest.mark.config_errors
def test_validate_checks_the_form_of_each_import_path(tmp_path):
    path = _spec(tmp_path, ["dlrun_faults:KillAtStep", "no colon", "a.b:C:D", 7])
    proc = run_cli("validate", path.name, cwd=tmp_path, check_code=2)
    line = next(i + 1 for i, t in enumerate(path.read_text().splitlines()) if "custom:" in t)
    assert proc.stderr.splitlines() == [
        f"spec.yaml:{line + 2}: callbacks.custom[1]: must be an import path module:Class, like "
        "mypackage.callbacks:LogToSlack; received 'no colon'",
        f"spec.yaml:{line + 3}: callbacks.custom[2]: must be an import path module:Class, like "
        "mypackage.callbacks:LogToSlack; received 'a.b:C:D'",
        f"spec.yaml:{line + 4}: callbacks.custom[3]: must be a string; received 7"]


@pytest.mark.config_errors
def test_validate_does_not_import_the_callback(tmp_path):
    path = _spec(tmp_path, ["no_such_module.anywhere:Callback"])
    proc = run_cli("validate", path.name, cwd=tmp_path, check_code=0)
    assert proc.stdout == "spec.yaml: ok\n"


def test_a_module_that_cannot_be_imported_fails_the_run_start_with_exit_2(tmp_path):
    proc = run_inline("train", _spec(tmp_path, ["no_such_module.anywhere:Callback"]), check_code=2)
    assert proc.stderr.splitlines()[-1] == (
        "callbacks.custom: 'no_such_module.anywhere:Callback': cannot import module 'no_such_module.anywhere' "
        "(No module named 'no_such_module'); put it on PYTHONPATH or fix the name")
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("custom, problem", [
    ("dlrun_faults:NoSuchClass", "module 'dlrun_faults' has no 'NoSuchClass'; fix the class name"),
    ("collections:OrderedDict", "OrderedDict is not a keras.callbacks.Callback subclass; received type "
                                "<class 'collections.OrderedDict'>"),
])
def test_a_name_that_is_not_a_callback_class_is_a_config_error(custom, problem):
    from runner.callbacks.custom import load_class
    from runner.kernel.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        load_class(custom)
    assert caught.value.message == f"callbacks.custom: {custom!r}: {problem}"


def test_a_class_that_needs_arguments_fails_the_run_start_with_exit_2_and_leaves_no_run(tmp_path):
    proc = run_inline("train", _spec(tmp_path, ["keras.callbacks:CSVLogger"]), check_code=2)
    assert proc.stderr.splitlines()[-1] == (
        "callbacks.custom: 'keras.callbacks:CSVLogger': cannot be built with no arguments (CSVLogger.__init__() "
        "missing 1 required positional argument: 'filename'); dlrun builds custom callbacks without any: "
        "subclass it with defaults and name the subclass")
    # the run failed before training: its directory (config.yaml, env.json by then) is removed, not listed
    assert list((tmp_path / "runs").iterdir()) == []


def test_the_class_is_imported_and_built():
    from dlrun_faults import KillAtStep
    from runner.callbacks import CALLBACKS
    from runner.callbacks.custom import Custom

    (callback,) = CALLBACKS.get("custom").builder(Custom(["dlrun_faults:KillAtStep"]), None)
    assert type(callback) is KillAtStep and callback.at is None  # FAULT_KILL_AT_STEP is not set here
