"""Motion vocabulary: upstream id layout, vectorised conversions, idempotent extension, layout errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.llm.vocab import MOTION_END, MOTION_START, MotionVocab, add_motion_tokens, code_token


def test_gemma_layout_arithmetic():
    vocab = MotionVocab(nb_text_tokens=256000)
    assert (vocab.motion_start_id, vocab.motion_end_id, vocab.first_code_id) == (256000, 256001, 256002)
    assert vocab.vocab_size == 256514 and vocab.nb_motion_tokens == 514
    assert vocab.tokens[:3] == ["<Motion>", "</Motion>", "<Motion_0>"] and vocab.tokens[-1] == "<Motion_511>"


def test_conversions_are_vectorised_and_keep_the_container():
    vocab = MotionVocab(nb_text_tokens=1000, nb_code=512)
    codes_t = torch.tensor([[0, 5], [511, 17]])
    ids_t = vocab.codes_to_ids(codes_t)
    assert isinstance(ids_t, torch.Tensor) and ids_t.tolist() == [[1002, 1007], [1513, 1019]]
    assert torch.equal(vocab.ids_to_codes(ids_t), codes_t)
    ids_n = vocab.codes_to_ids(np.array([3, 4], dtype=np.int32))
    assert isinstance(ids_n, np.ndarray) and ids_n.tolist() == [1005, 1006]
    assert vocab.codes_to_ids([1, 2]).tolist() == [1003, 1004]
    mixed = torch.tensor([999, 1000, 1001, 1002, 1513, 1514])
    assert vocab.is_motion_id(mixed).tolist() == [False, True, True, True, True, False]
    assert vocab.is_code_id(mixed).tolist() == [False, False, False, True, True, False]
    assert vocab.local_index(torch.tensor([1000, 1001, 1002])).tolist() == [0, 1, 2]


def test_conversion_errors_name_the_bad_values():
    vocab = MotionVocab(nb_text_tokens=1000, nb_code=512)
    with pytest.raises(ValueError, match=r"\[0, 512\).*\[-1, 3\]"):
        vocab.codes_to_ids([3, -1])
    with pytest.raises(ValueError, match="512"):
        vocab.codes_to_ids(np.array([512]))
    with pytest.raises(ValueError, match="1001"):
        vocab.ids_to_codes(torch.tensor([1002, 1001]))  # </Motion> is not a code


def test_text_forms():
    vocab = MotionVocab(nb_text_tokens=10, nb_code=512)
    assert vocab.codes_to_text(torch.tensor([17, 402])) == "<Motion_17><Motion_402>"
    assert vocab.block_text([3]) == "<Motion><Motion_3></Motion>"
    assert vocab.block_text([]) == "<Motion></Motion>"
    with pytest.raises(ValueError):
        vocab.block_text([600])


def _fresh_tokenizer(tiny_folder):
    from models.llm.model import load_tokenizer

    return load_tokenizer(tiny_folder)


def test_add_motion_tokens_upstream_layout_and_round_trip(tiny_folder):
    tokenizer = _fresh_tokenizer(tiny_folder)
    base = len(tokenizer)
    vocab = add_motion_tokens(tokenizer)
    assert vocab == MotionVocab(nb_text_tokens=base, nb_code=512)
    assert len(tokenizer) == base + 514
    assert tokenizer.vocab_size == base  # upstream's text/motion split in metrics relies on this
    assert tokenizer.convert_tokens_to_ids([MOTION_START, MOTION_END, "<Motion_0>", "<Motion_511>"]) == [
        base,
        base + 1,
        base + 2,
        base + 513,
    ]
    codes = [17, 0, 511, 42]
    text = "Response:" + vocab.block_text(codes) + "<eos>"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    motion = ids[ids.index(vocab.motion_start_id) :]
    assert motion == [vocab.motion_start_id, *vocab.codes_to_ids(codes).tolist(), vocab.motion_end_id, 1]
    assert tokenizer.decode(vocab.codes_to_ids(codes).tolist()) == vocab.codes_to_text(codes)
    assert tokenizer.decode(ids) == text
    assert add_motion_tokens(tokenizer) == vocab and len(tokenizer) == base + 514  # idempotent
    assert MotionVocab.from_tokenizer(tokenizer) == vocab


def test_add_motion_tokens_rejects_other_codebook_size(tiny_folder):
    tokenizer = _fresh_tokenizer(tiny_folder)
    add_motion_tokens(tokenizer, nb_code=16)
    with pytest.raises(ValueError, match="16 motion codes"):
        add_motion_tokens(tokenizer, nb_code=512)


def test_wrong_order_is_rejected(tiny_folder):
    tokenizer = _fresh_tokenizer(tiny_folder)
    tokenizer.add_tokens([code_token(k) for k in range(4)] + [MOTION_START, MOTION_END])
    with pytest.raises(ValueError, match="not in the upstream layout"):
        add_motion_tokens(tokenizer, nb_code=4)
    with pytest.raises(ValueError, match="not in the upstream layout"):
        MotionVocab.from_tokenizer(tokenizer)


def test_partial_and_trailing_tokens_are_rejected(tiny_folder):
    partial = _fresh_tokenizer(tiny_folder)
    partial.add_tokens([MOTION_START, MOTION_END, "<Motion_0>", "<Motion_2>"])
    with pytest.raises(ValueError, match="without gaps"):
        add_motion_tokens(partial, nb_code=3)
    trailing = _fresh_tokenizer(tiny_folder)
    add_motion_tokens(trailing, nb_code=4)
    trailing.add_tokens(["<extra>"])
    with pytest.raises(ValueError, match="last ids"):
        MotionVocab.from_tokenizer(trailing)
    with pytest.raises(ValueError, match="no <Motion>"):
        MotionVocab.from_tokenizer(_fresh_tokenizer(tiny_folder))
