"""Shared pytest configuration.

Tests marked ``slow`` run only with ``--run-slow`` (``make test-all``); each of them has a
smaller form that runs by default, so CI exercises every path at least once.
"""

import os

import pytest
from hypothesis import settings

# CI replays the same examples every run (a failure there is reproducible from its log); a
# developer's run explores new ones.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", help="also run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow (make test-all)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def run_slow(request):
    """True when the full-size forms of tests were asked for."""
    return request.config.getoption("--run-slow")
