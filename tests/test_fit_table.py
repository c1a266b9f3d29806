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


@pytest.mark.parametrize(
    "text, kwargs, message",
    [
        ("", {}, "is empty"),
        ("params,tokens,loss\n", {}, "no runs"),
        ("params,loss\n1e8,3.0\n", {}, r"column\(s\) \['tokens'\] not found; the columns are \['params', 'loss'\]"),
        ("params,tokens,loss\n1e8,2e9,abc\n", {}, r"line 2, column 'loss': 'abc' is not a number"),
        ("params,tokens,loss\n1e8,2e9,-3\n", {}, r"line 2, column 'loss': '-3' is not positive"),
        ("params,tokens,loss\n1e8,2e9,3\n2e8,2e9,nan\n", {}, r"line 3, column 'loss': 'nan' is not a finite number"),
        ("params,tokens,loss\n1e8,2e9,3\n", {"flops_col": "flops"}, r"column\(s\) \['flops'\] not found"),
    ],
)
def test_csv_errors(tmp_path, text, kwargs, message):
    path = write(tmp_path, text)
    with pytest.raises(ValueError, match=message):
        read_csv(path, n_col="params", loss_col="loss", tokens_col="tokens", **kwargs)


def test_array_errors():
    with pytest.raises(ValueError, match="give d"):
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


@pytest.mark.parametrize(
    "header, used",
    [
        ("N,D,loss", {"n": "N", "d": "D", "loss": "loss"}),
        ("params,tokens,final_loss", {"n": "params", "d": "tokens", "loss": "final_loss"}),
        ("Parameters,n_tokens,Eval_Loss", {"n": "Parameters", "d": "n_tokens", "loss": "Eval_Loss"}),
        ("n_params,compute,loss", {"n": "n_params", "flops": "compute", "loss": "loss"}),
    ],
)
def test_default_column_names_are_recognised_and_reported(tmp_path, header, used):
    table = read_csv(write(tmp_path, f"{header}\n1e8,2e9,3.1\n4e8,8e9,2.7\n"))
    assert dict(table.columns) == used
    for column in used.values():
        assert f"{column!r}" in table.source
    expected_d = [2e9, 8e9] if "d" in used else [2e9 / 6e8, 8e9 / 24e8]
    np.testing.assert_allclose(table.d, expected_d)


def test_missing_default_column_names_what_to_do(tmp_path):
    with pytest.raises(ValueError, match=r"no column for D or C \(name it with --tokens-col or --flops-col"):
        read_csv(write(tmp_path, "N,loss\n1e8,3\n"))


def test_tokens_and_flops_both_read_when_present(tmp_path):
    table = read_csv(write(tmp_path, "N,D,C,loss\n1e8,2e9,1.3e18,3.1\n"))
    assert table.d[0] == 2e9 and table.flops[0] == 1.3e18  # the file's C, not 6ND = 1.2e18


def test_where_filters_rows_over_derived_and_file_columns(tmp_path):
    path = write(tmp_path, "N,D,loss,seed\n1e8,2e9,3.1,1\n2e8,2e9,3.0,2\n4e8,1e10,2.8,1\n1e9,5e10,2.5,2\n")
    table = read_csv(path, where="tokens_per_param <= 30")
    np.testing.assert_array_equal(table.n, [1e8, 2e8, 4e8])
    assert "where tokens_per_param <= 30: 3 of 4 runs" in table.source
    np.testing.assert_array_equal(read_csv(path, where="seed == 2 and not N > 5e8").n, [2e8])
    np.testing.assert_array_equal(read_csv(path, where="1e8 < N <= 4e8, loss*2 > 5.7").n, [2e8])
    np.testing.assert_array_equal(read_csv(path, where="(D / N) > 40 || loss >= 3.1").n, [1e8, 1e9])
    assert len(reference_table().where("tokens_per_param <= 30")) < len(reference_table())


@pytest.mark.parametrize(
    "expression, message",
    [
        ("tokens_per_param <=", "expected a number, a column or '\\(' at the end"),
        ("foo < 3", "unknown column 'foo'"),
        ("N > 1e8; import os", r"unexpected ';' at character 8"),
        ("N", "expected a comparison"),
        ("__import__('os') > 1", 'unexpected "\'" at character 12'),
        ("N > 1e20", "keeps none of the 2 runs"),
    ],
)
def test_where_errors_name_the_problem(tmp_path, expression, message):
    path = write(tmp_path, "N,D,loss\n1e8,2e9,3.1\n2e8,2e9,3.0\n")
    with pytest.raises(ValueError, match=message):
        read_csv(path, where=expression)


def test_unique_tokens_above_tokens_names_the_line(tmp_path):
    with pytest.raises(ValueError, match=r"line 3, column 'U': 3e\+09 unique tokens exceed"):
        read_csv(write(tmp_path, "N,D,U,loss\n1e8,2e9,1e9,3\n1e8,2e9,3e9,3\n"))


def test_rows_without_a_loss_are_skipped_and_said(tmp_path):
    path = write(tmp_path, "N,D,loss\n1e8,2e9,3.1\n2e8,2e9,\n4e8,1e10,2.8\n")
    table = read_csv(path)
    np.testing.assert_array_equal(table.n, [1e8, 4e8])
    assert "skipped 1 row(s) with an empty 'loss': line(s) 3" in table.source
    with pytest.raises(ValueError, match="no runs with a loss"):
        read_csv(write(tmp_path, "N,D,loss\n1e8,2e9,\n"))
    with pytest.raises(ValueError, match="line 2, column 'D': '' is not a number"):
        read_csv(write(tmp_path, "N,D,loss\n1e8,,3.1\n"))


def test_a_binary_or_bom_file_is_named(tmp_path):
    """A non-UTF-8 file gave a bare 'utf-8 codec can't decode byte 0xff' naming no file; a BOM (Excel's CSV)
    must not hide the first column."""
    path = tmp_path / "runs.csv"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ValueError, match=r"runs\.csv: not a UTF-8 text file"):
        read_csv(path)
    path.write_bytes("\ufeffparams,tokens,loss\n1e8,2e9,3.0\n".encode("utf-8"))
    assert read_csv(path).n.tolist() == [1e8]
