"""Loading runs for the fitters: CSV files, arrays, the shipped reference data, and clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from chinchilla.fit import ScalingTable, read_csv, reference_table


def write(tmp_path, text: str):
    path = tmp_path / "runs.csv"
    path.write_text(text)
    return path


def test_reference_data_is_the_replications():
    table = reference_table("epoch")
    assert len(table) == 245
    np.testing.assert_allclose(table.d, table.flops / (6 * table.n))
    kept = table.drop_highest_loss(5)
    assert len(kept) == 240
    assert kept.loss.max() < np.sort(table.loss)[-5]  # exactly the five highest are gone
    assert "dropped the 5 highest-loss runs" in kept.source


def test_csv_with_tokens_or_flops(tmp_path):
    path = write(tmp_path, "params,tokens,flops,final loss\n1e8,2e9,1.2e18,3.1\n4e8,8e9,1.92e19,2.7\n")
    by_tokens = read_csv(path, n_col="params", tokens_col="tokens", loss_col="final loss")
    by_flops = read_csv(path, n_col="params", flops_col="flops", loss_col="final loss")
    np.testing.assert_allclose(by_tokens.flops, [1.2e18, 1.92e19])
    np.testing.assert_allclose(by_flops.d, [2e9, 8e9])
    np.testing.assert_allclose(by_flops.loss, [3.1, 2.7])


@pytest.mark.parametrize("text, kwargs, message", [
    ("", {}, "is empty"),
    ("params,tokens,loss\n", {}, "no runs"),
    ("params,loss\n1e8,3.0\n", {}, r"column\(s\) \['tokens'\] not found; the columns are \['params', 'loss'\]"),
    ("params,tokens,loss\n1e8,2e9,abc\n", {}, r"line 2, column 'loss': 'abc' is not a number"),
    ("params,tokens,loss\n1e8,2e9,-3\n", {}, r"loss\[0\]=-3.0"),
    ("params,tokens,loss\n1e8,2e9,3\n", {"flops_col": "flops"}, "exactly one"),
])
def test_csv_errors(tmp_path, text, kwargs, message):
    path = write(tmp_path, text)
    with pytest.raises(ValueError, match=message):
        read_csv(path, n_col="params", loss_col="loss", tokens_col="tokens", **kwargs)


def test_array_errors():
    with pytest.raises(ValueError, match="exactly one of d"):
        ScalingTable.from_arrays([1e8], [3.0])
    with pytest.raises(ValueError, match=r"flops\[1\]=inf"):
        ScalingTable.from_arrays([1e8, 2e8], [3.0, 2.9], flops=[1e18, np.inf])
    with pytest.raises(ValueError, match="one-dimensional"):
        ScalingTable.from_arrays(np.ones((2, 2)), np.ones(2), d=np.ones(2))
    with pytest.raises(ValueError, match="exceeds"):
        ScalingTable.from_arrays([1e8], [3.0], d=[1e9], unique_tokens=[2e9])
    with pytest.raises(ValueError, match="would drop all"):
        ScalingTable.from_arrays([1e8, 2e8], [3.0, 2.9], d=[1e9, 1e9]).drop_highest_loss(2)
    with pytest.raises(ValueError, match="unknown reference"):
        reference_table("kaplan")
