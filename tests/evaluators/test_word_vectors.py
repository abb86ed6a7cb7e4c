"""Word vectors: our_vab round trip, gensim formats, POS/VIP rules, unknown-word counting, caption framing."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from evaluators.word_vectors import (
    NUM_POS,
    POS_ENUMERATOR,
    WordVectorizer,
    load_plain_pickle,
    pad_caption_tokens,
    save_our_vab,
)
from models.common.errors import DataError


def _onehot(tag: str) -> np.ndarray:
    vec = np.zeros(NUM_POS, np.float32)
    vec[POS_ENUMERATOR[tag]] = 1
    return vec


def test_our_vab_save_load_roundtrip(tmp_path, toy_vocabulary):
    vectors, words = toy_vocabulary
    save_our_vab(vectors, words, tmp_path / "glove")
    assert sorted(os.listdir(tmp_path / "glove")) == [
        "our_vab_data.npy",
        "our_vab_idx.pkl",
        "our_vab_words.pkl",
    ]
    loaded = WordVectorizer.load_our_vab(tmp_path / "glove")
    assert loaded.words == words
    np.testing.assert_array_equal(loaded.vectors, vectors)
    np.testing.assert_array_equal(loaded["person/NOUN"][0], vectors[words.index("person")])


def test_our_vab_index_file_decides_the_row(tmp_path, toy_vocabulary):
    vectors, words = toy_vocabulary
    folder = tmp_path / "glove"
    save_our_vab(vectors, words, folder)
    shuffled = {w: len(words) - 1 - i for i, w in enumerate(words)}  # rows stored in reverse order
    np.save(folder / "our_vab_data.npy", vectors[::-1])
    (folder / "our_vab_idx.pkl").write_bytes(pickle.dumps(shuffled))
    loaded = WordVectorizer.load_our_vab(folder)
    np.testing.assert_array_equal(loaded["walk/VERB"][0], vectors[words.index("walk")])


def test_restricted_unpickler_rejects_code(tmp_path):
    class Exploit:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    evil = tmp_path / "our_vab_words.pkl"
    evil.write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(DataError, match="refusing to load global"):
        load_plain_pickle(evil)
    legacy = tmp_path / "ok.pkl"
    legacy.write_bytes(pickle.dumps({"sos": 0, "walk": 1}, protocol=0))
    assert load_plain_pickle(legacy) == {"sos": 0, "walk": 1}


def test_gensim_glove_text_loading():
    from gensim.test.utils import datapath

    with pytest.raises(DataError, match="special tokens"):
        WordVectorizer.load_keyed_vectors(datapath("test_glove.txt"), "glove")
    vectorizer = WordVectorizer.load_keyed_vectors(
        datapath("test_glove.txt"), "glove", missing_specials="zeros"
    )
    assert vectorizer.dim == 50 and len(vectorizer.words) == 76 + 3
    assert "the" in vectorizer and np.abs(vectorizer["the/DET"][0]).sum() > 0
    np.testing.assert_array_equal(vectorizer["unk/OTHER"][0], np.zeros(50, np.float32))


def test_gensim_word2vec_text_and_binary(tmp_path):
    from gensim.models import KeyedVectors

    keyed = KeyedVectors(vector_size=4)
    keyed.add_vectors(["sos", "eos", "unk", "walk"], np.arange(16, dtype=np.float32).reshape(4, 4))
    keyed.save_word2vec_format(str(tmp_path / "v.txt"), binary=False)
    keyed.save_word2vec_format(str(tmp_path / "v.bin"), binary=True)
    for name, fmt in (("v.txt", "word2vec"), ("v.bin", "word2vec_binary")):
        vectorizer = WordVectorizer.load_keyed_vectors(tmp_path / name, fmt)
        np.testing.assert_array_equal(vectorizer["walk/VERB"][0], [12, 13, 14, 15])


def test_pos_one_hot_and_vip_rules(toy_vectorizer):
    # VIP list wins over the tag for known words, in the order Loc, Body, Obj, Act, Desc.
    assert np.array_equal(toy_vectorizer["left/ADJ"][1], _onehot("Loc_VIP"))
    assert np.array_equal(toy_vectorizer["hand/NOUN"][1], _onehot("Body_VIP"))
    assert np.array_equal(toy_vectorizer["chair/NOUN"][1], _onehot("Obj_VIP"))
    assert np.array_equal(toy_vectorizer["walk/VERB"][1], _onehot("Act_VIP"))
    assert np.array_equal(toy_vectorizer["slowly/ADV"][1], _onehot("Desc_VIP"))
    # Non-VIP known words keep their tag; an unknown tag is OTHER.
    assert np.array_equal(toy_vectorizer["person/NOUN"][1], _onehot("NOUN"))
    assert np.array_equal(toy_vectorizer["a/DET"][1], _onehot("DET"))
    assert np.array_equal(toy_vectorizer["and/CCONJ"][1], _onehot("OTHER"))


def test_unknown_word_uses_unk_and_other_and_is_counted(toy_vectorizer, toy_vocabulary):
    vectors, words = toy_vocabulary
    vec, pos = toy_vectorizer["kick/VERB"]  # a VIP word, but not in this vocabulary: VIP not checked
    np.testing.assert_array_equal(vec, vectors[words.index("unk")])
    np.testing.assert_array_equal(pos, _onehot("OTHER"))
    toy_vectorizer.caption_arrays(["a/DET", "person/NOUN", "kick/VERB", "ball/NOUN"])
    assert toy_vectorizer.unknown_counts == {"kick": 2, "ball": 1}
    assert toy_vectorizer.num_lookups == 5
    assert toy_vectorizer.unknown_report().startswith("3/5 word lookups used 'unk'")


@pytest.mark.parametrize(
    ("n_tokens", "sent_len", "n_unk_pad"), [(5, 7, 15), (19, 21, 1), (20, 22, 0), (27, 22, 0)]
)
def test_caption_framing_below_at_and_above_max(
    toy_vectorizer, toy_vocabulary, n_tokens, sent_len, n_unk_pad
):
    vectors, words = toy_vocabulary
    tokens = [f"w{i}/NOUN" if i % 2 else "person/NOUN" for i in range(n_tokens)]
    framed, length = pad_caption_tokens(tokens)
    assert length == sent_len and len(framed) == 22
    assert framed[0] == "sos/OTHER" and framed[sent_len - 1] == "eos/OTHER"
    assert framed[sent_len:] == ["unk/OTHER"] * n_unk_pad
    assert framed[1 : sent_len - 1] == tokens[:20]
    word_embs, pos_ohot, length2 = toy_vectorizer.caption_arrays(tokens)
    assert word_embs.shape == (22, 8) and pos_ohot.shape == (22, 15) and length2 == sent_len
    assert word_embs.dtype == np.float32 and pos_ohot.dtype == np.float32
    np.testing.assert_array_equal(word_embs[0], vectors[words.index("sos")])
    np.testing.assert_array_equal(word_embs[sent_len - 1], vectors[words.index("eos")])
    np.testing.assert_array_equal(pos_ohot[0], _onehot("OTHER"))


def test_empty_caption_and_malformed_token_errors(toy_vectorizer):
    with pytest.raises(DataError, match="empty caption"):
        toy_vectorizer.caption_arrays([])
    with pytest.raises(DataError, match="word/POS"):
        toy_vectorizer.caption_arrays(["walk"])


def test_batch_collation_sorted_and_unsorted(toy_vectorizer):
    captions = [
        ["a/DET", "person/NOUN"],
        ["a/DET", "person/NOUN", "walk/VERB", "forward/ADV"],
        ["jump/VERB"],
        ["turn/VERB", "around/ADV"],
    ]
    plain = toy_vectorizer.batch(captions)
    assert plain.sent_lens.tolist() == [4, 6, 3, 4] and plain.order.tolist() == [0, 1, 2, 3]
    ordered = toy_vectorizer.batch(captions, sort_by_length=True)
    assert ordered.sent_lens.tolist() == [6, 4, 4, 3] and ordered.order.tolist() == [1, 0, 3, 2]
    np.testing.assert_array_equal(ordered.word_embs, plain.word_embs[ordered.order])
    assert ordered.pos_ohot.shape == (4, 22, 15)


def test_vocabulary_without_special_tokens_is_rejected():
    with pytest.raises(DataError, match="special tokens"):
        WordVectorizer(np.zeros((2, 3)), ["walk", "run"])
