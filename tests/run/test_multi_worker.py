"""multi_worker's Keras fix: pinned to the installed Keras source, and refused with exit 5 when that source changed.
(Two real workers training together, with only the chief writing, are in test_resume_kinds.py: that run is the
reference its resumed run is compared with.)"""

from __future__ import annotations

import pytest


def test_every_keras_fix_is_pinned_to_the_installed_keras_source():
    from runner.kernel.keras_pins import FIXES, PINNED_KERAS, require, source_hash

    import keras

    assert keras.version() == PINNED_KERAS
    for fix, (pins, _) in FIXES.items():
        assert {name: source_hash(name) for name in pins} == pins, fix
        require(fix)


def test_a_changed_keras_function_stops_the_fix_with_exit_5_naming_versions_and_the_way_out(monkeypatch):
    from runner.kernel import keras_pins
    from runner.kernel.errors import EnvironmentProblem

    pins, instead = keras_pins.FIXES["multi_worker_fit"]
    name = next(iter(pins))
    monkeypatch.setitem(keras_pins.FIXES, "multi_worker_fit", ({**pins, name: "0000000000000000"}, instead))
    keras_pins.require.cache_clear()
    with pytest.raises(EnvironmentProblem) as e:
        keras_pins.require("multi_worker_fit")
    keras_pins.require.cache_clear()
    assert e.value.exit_code == 5
    assert e.value.message == (
        "Keras 3.15.1 is installed; dlrun's multi_worker_fit fix was written for Keras 3.15.1 and its Keras code "
        f"changed ({name}), so dlrun will not patch it: use distribute.strategy: mirrored (one host) or default, "
        "or install keras==3.15.1")
