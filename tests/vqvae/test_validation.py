"""Bad inputs fail loudly with a DataError naming the item (index and name)."""

from __future__ import annotations

import pytest
import torch

from models.common.errors import DataError

NAMES = ["000001", "M000002", "000003"]


def test_wrong_feature_width_names_item(small_model, make_motions):
    motions = make_motions([16, 16, 16])
    motions[1] = torch.randn(16, 251)
    with pytest.raises(DataError, match=r"record 1 \(M000002\).*\[T, 263\].*\(16, 251\)"):
        small_model.encode(motions, names=NAMES)


def test_wrong_width_of_padded_tensor(small_model):
    with pytest.raises(DataError, match="width 251, the VQ-VAE expects 263"):
        small_model.encode(torch.zeros(2, 16, 251))
    with pytest.raises(DataError, match="width 251"):
        small_model(torch.zeros(2, 16, 251))


@pytest.mark.parametrize("bad_value", [float("nan"), float("inf")])
def test_non_finite_names_item(small_model, make_motions, bad_value):
    motions = make_motions([16, 20, 24])
    motions[2][5, 7] = bad_value
    with pytest.raises(DataError, match=r"record 2 \(000003\).*NaN or Inf.*\[2\]"):
        small_model.encode(motions, names=NAMES)
    padded = torch.nn.utils.rnn.pad_sequence(motions, batch_first=True)
    with pytest.raises(DataError, match=r"record 2: .*NaN or Inf"):
        small_model.encode(padded, lengths=[16, 20, 24])


def test_zero_length_motion(small_model, make_motions):
    motions = make_motions([16, 0, 16])
    with pytest.raises(DataError, match=r"record 1 \(M000002\).*empty \(0 frames\)"):
        small_model.encode(motions, names=NAMES)


def test_motion_shorter_than_one_unit(small_model, make_motions):
    motions = make_motions([16, 8, 3])
    with pytest.raises(DataError, match=r"record 2 \(000003\).*3 frames, fewer than one VQ unit \(4 fr"):
        small_model.encode(motions, names=NAMES)
    padded = torch.zeros(2, 16, 263)
    with pytest.raises(DataError, match=r"record 0: motion has 2 frames"):
        small_model.encode(padded, lengths=torch.tensor([2, 16]))


def test_exactly_one_unit_is_accepted(small_model, make_motions):
    (codes,) = small_model.encode(make_motions([4]))
    assert codes.shape == (1,)


def test_bad_lengths_and_names(small_model):
    with pytest.raises(DataError, match="do not fit"):
        small_model.encode(torch.zeros(2, 16, 263), lengths=[16, 17])
    with pytest.raises(ValueError, match="2 names for 1 motions"):
        small_model.encode([torch.zeros(8, 263)], names=["a", "b"])
    with pytest.raises(DataError, match="no motions"):
        small_model.encode([])


def test_bad_codes(small_model):
    with pytest.raises(DataError, match=r"record 1: code 64 outside the codebook \[0, 64\)"):
        small_model.decode([torch.tensor([1, 2]), torch.tensor([3, 64])])
    with pytest.raises(DataError, match="code -1 outside"):
        small_model.decode(torch.tensor([[0, -1]]))
    with pytest.raises(DataError, match=r"record 0: empty code sequence"):
        small_model.decode([torch.tensor([], dtype=torch.long)])
    with pytest.raises(DataError, match="must be integers"):
        small_model.decode(torch.zeros(1, 3))
    with pytest.raises(DataError, match=r"wrap a single sequence as codes\[None\]"):
        small_model.decode(torch.tensor([1, 2, 3]))
