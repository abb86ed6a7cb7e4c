"""opt.txt reader: upstream typing rules, robustness to malformed lines."""

from __future__ import annotations

import pytest

from evaluators.opt_file import parse_opt_value, read_opt_file
from models.common.errors import DataError


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("True", True),
        ("False", False),
        ("0.0002", 0.0002),
        ("-0.5", -0.5),
        ("32", 32),
        ("+4", 4),
        ("1e-05", "1e-05"),
        ("bigru", "bigru"),
        ("./checkpoints", "./checkpoints"),
        ("", ""),
    ],
)
def test_values_are_typed_like_upstream(raw, value):
    parsed = parse_opt_value(raw)
    assert parsed == value and type(parsed) is type(value)


def test_reads_comp_v6_style_file_and_skips_lines_without_separator(tmp_path):
    path = tmp_path / "opt.txt"
    path.write_text(
        "------------ Options -------------\n\nbatch_size: 32\ncheckpoints_dir: ./checkpoints\n"
        "dataset_name: t2m\nis_train: True\nlambda_kld: 0.005\nnote: a: b\n"
        "-------------- End ----------------\nwindow_size = 64\n"
    )
    options = read_opt_file(path)
    assert options == {
        "batch_size": 32,
        "checkpoints_dir": "./checkpoints",
        "dataset_name": "t2m",
        "is_train": True,
        "lambda_kld": 0.005,
        "note": "a: b",
    }


def test_empty_or_missing_file_is_a_data_error(tmp_path):
    empty = tmp_path / "opt.txt"
    empty.write_text("------------ Options -------------\n-------------- End ----------------\n")
    with pytest.raises(DataError, match="no 'key: value'"):
        read_opt_file(empty)
    with pytest.raises(DataError, match="cannot read"):
        read_opt_file(tmp_path / "absent.txt")
