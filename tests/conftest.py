"""pytest fixtures; the helpers themselves are in helpers.py."""

from __future__ import annotations

from collections import Counter

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


def pytest_collection_modifyitems(items):
    """Files with the most slow tests first (a stable sort: each file keeps its order). With `--dist loadfile
    --no-loadscope-reorder` (the Makefile's flags) the long multi-process files start early and short ones fill the
    end, instead of one worker finishing a long file alone."""
    slow = Counter(item.path for item in items if item.get_closest_marker("slow"))
    items.sort(key=lambda item: -slow[item.path])
