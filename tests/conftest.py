"""pytest fixtures; the helpers themselves are in helpers.py."""

from __future__ import annotations

import pytest

from helpers import run_cli


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(autouse=True, scope="session")
def messages():
    """dlrun's own lines on stderr, as the CLI shows them, for the tests that call library code in-process."""
    from runner.cli.output import configure_messages

    configure_messages()
