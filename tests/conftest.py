"""pytest fixtures; the helpers themselves are in helpers.py."""

from __future__ import annotations

import gc

import pytest

from helpers import run_cli
from runner.cli.tensorflow_import import import_tensorflow_when_needed

# a worker imports TensorFlow as the dlrun program does: the collector paused for the import, and the objects it
# leaves frozen out of every later collection, which would otherwise walk them again each time
import_tensorflow_when_needed(quiet=False)


@pytest.fixture(autouse=True, scope="module")
def freeze_what_outlives_the_module():
    """After each test module, what survives a collection is frozen as well.

    Mostly the graphs its models traced: a custom gradient traced in graph mode registers a new gradient
    function in TensorFlow's global registry (ops._gradient_registry), which keeps it and its graph for the life of
    the process, whether the model lives or not. Walked again by every full collection, they made the collector
    13 % of a worker's time (32.6 of 254 s over test_models, test_compress, test_kfold and test_gan; 8.7 of 235 s
    frozen). Measured before one-replica runs stopped all-reducing their gradients (compile_options), the source of
    most of those registrations; multi-replica runs still make them.
    """
    yield
    gc.collect()
    gc.freeze()


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(autouse=True, scope="session")
def messages():
    """dlrun's own lines on stderr, as the CLI shows them, for the tests that call library code in-process."""
    from runner.cli.output import configure_messages

    configure_messages()
