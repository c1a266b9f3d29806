"""Shared by the whole suite: the fitting tests' fixtures (the replication's data, Besiroglu et al. 2024's 245 points
less the 5 highest losses, as the paper's Approach 3 drops outliers, and its default fit, computed once per test
session), JAX's persistent compilation cache, and the order in which pytest-xdist's workers get the tests
(scripts/test.sh runs the suite with -n auto)."""

from __future__ import annotations

import pytest

from chinchilla.fit import fit_table, reference_table
from chinchilla.jax_cache import enable_compilation_cache


def pytest_configure(config: pytest.Config) -> None:
    """JAX's persistent compilation cache on from the start, in every test process (pytest-xdist's workers too):
    training and fitting turn it on when they first run, so without this a test that compiles before any of them in
    its process (the memory planner's big models: ~100 s) compiles again what another process compiled already."""
    enable_compilation_cache()


@pytest.fixture(scope="session")
def table240():
    return reference_table("epoch").drop_highest_loss(5)


@pytest.fixture(scope="session")
def full_fit(table240):
    return fit_table(table240)


@pytest.hookimpl(trylast=True)  # after pytest's own reordering by fixture
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In a pytest-xdist worker (``-n``), the tests marked slow go first: the workers then end on many short tests,
    not one of them on a long test while the others idle. Without xdist the order is the file order."""
    if hasattr(config, "workerinput"):  # an xdist worker: it collects, and the controller hands out in this order
        items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable: file order within each part
