"""Fixtures shared by the fitting tests: the replication's data (Besiroglu et al. 2024's 245 points less the 5
highest losses, as the paper's Approach 3 drops outliers) and its default fit, computed once per test session."""

from __future__ import annotations

import pytest

from chinchilla.fit import fit_table, reference_table


@pytest.fixture(scope="session")
def table240():
    return reference_table("epoch").drop_highest_loss(5)


@pytest.fixture(scope="session")
def full_fit(table240):
    return fit_table(table240)
