"""GloVe word vectors and the 15-way POS one-hot fed to the T2M text encoder.

A caption arrives pre-tokenised as ``["word/POS", ...]`` (HumanML3D ``texts/*.txt`` field 2, or
:func:`evaluators.text_processing.tokenize_caption` for free text). Each token becomes

- its word vector, or the ``unk`` vector when the word is not in the vocabulary (counted in
  :attr:`WordVectorizer.unknown_counts`, so the fallback is visible, never silent);
- a POS one-hot: for a known word, the first VIP category (Loc, Body, Obj, Act, Desc) whose list holds
  it, else its POS tag (unknown tag -> OTHER); for an unknown word always OTHER.

Vocabulary files:

- the evaluator's own ``glove/our_vab_{data.npy,words.pkl,idx.pkl}`` (read with a restricted unpickler
  that only admits plain lists, dicts, strings and ints), written by :func:`save_our_vab`;
- standard GloVe text, word2vec text or word2vec binary files through gensim ``KeyedVectors``.
"""

from __future__ import annotations

import io
import logging
import pickle
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from models.common.errors import DataError
from models.common.io import atomic_write, atomic_write_bytes

logger = logging.getLogger(__name__)

# fmt: off
POS_ENUMERATOR: dict[str, int] = {
    "VERB": 0, "NOUN": 1, "DET": 2, "ADP": 3, "NUM": 4, "AUX": 5, "PRON": 6, "ADJ": 7, "ADV": 8,
    "Loc_VIP": 9, "Body_VIP": 10, "Obj_VIP": 11, "Act_VIP": 12, "Desc_VIP": 13, "OTHER": 14,
}
NUM_POS = len(POS_ENUMERATOR)

# Checked in this order; the first list containing a (known) word decides its category.
VIP_WORDS: dict[str, tuple[str, ...]] = {
    "Loc_VIP": ("left", "right", "clockwise", "counterclockwise", "anticlockwise", "forward", "back",
                "backward", "up", "down", "straight", "curve"),
    "Body_VIP": ("arm", "chin", "foot", "feet", "face", "hand", "mouth", "leg", "waist", "eye", "knee",
                 "shoulder", "thigh"),
    "Obj_VIP": ("stair", "dumbbell", "chair", "window", "floor", "car", "ball", "handrail", "baseball",
                "basketball"),
    "Act_VIP": ("walk", "run", "swing", "pick", "bring", "kick", "put", "squat", "throw", "hop", "dance",
                "jump", "turn", "stumble", "stop", "sit", "lift", "lower", "raise", "wash", "stand", "kneel",
                "stroll", "rub", "bend", "balance", "flap", "jog", "shuffle", "lean", "rotate", "spin",
                "spread", "climb"),
    "Desc_VIP": ("slowly", "carefully", "fast", "careful", "slow", "quickly", "happy", "angry", "sad",
                 "happily", "angrily", "sadly"),
}
# fmt: on
_VIP_OF_WORD: dict[str, str] = {}
for _category, _words in VIP_WORDS.items():
    for _word in _words:
        _VIP_OF_WORD.setdefault(_word, _category)

SOS, EOS, UNK = "sos", "eos", "unk"
SPECIAL_TOKENS = (SOS, EOS, UNK)
DEFAULT_MAX_TEXT_LEN = 20


class _PlainDataUnpickler(pickle.Unpickler):
    """Unpickler that refuses every global except the builtin ``list``, ``dict``, ``str`` and ``int``."""

    _ALLOWED = {("builtins", "list"), ("builtins", "dict"), ("builtins", "str"), ("builtins", "int")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"refusing to load global {module}.{name} (only plain lists/dicts/str/int)"
        )


def load_plain_pickle(path: str | Path) -> Any:
    """Unpickle a file that may only contain lists, dicts, strings and ints (no code can run)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read ({err})", path=path) from err
    try:
        return _PlainDataUnpickler(io.BytesIO(data)).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as err:
        raise DataError(f"not a plain-data pickle: {err}", path=path) from err


def pos_index(tag: str) -> int:
    """Index of a POS tag in the 15-way one-hot; unknown tags map to OTHER."""
    return POS_ENUMERATOR.get(tag, POS_ENUMERATOR["OTHER"])


def split_token(token: str) -> tuple[str, str]:
    """``"word/POS"`` -> ``("word", "POS")``; a ``DataError`` for anything without exactly one ``/``."""
    word, sep, tag = token.partition("/")
    if not sep or not word or "/" in tag:
        raise DataError(f"expected a 'word/POS' token, got {token!r}", field="tokens")
    return word, tag


def pad_caption_tokens(
    tokens: Sequence[str], max_text_len: int = DEFAULT_MAX_TEXT_LEN
) -> tuple[list[str], int]:
    """Upstream's framing: ``sos + tokens[:max] + eos`` padded with ``unk/OTHER`` to ``max + 2``.

    Returns ``(tokens, sent_len)``; ``sent_len`` counts sos and eos (so 3..max+2).
    """
    if not tokens:
        raise DataError("empty caption: no 'word/POS' tokens", field="tokens")
    framed = [f"{SOS}/OTHER", *tokens[:max_text_len], f"{EOS}/OTHER"]
    sent_len = len(framed)
    return framed + [f"{UNK}/OTHER"] * (max_text_len + 2 - sent_len), sent_len


@dataclass
class CaptionBatch:
    """A collated batch: ``word_embs [B, L, D]``, ``pos_ohot [B, L, 15]`` (float32), ``sent_lens [B]``.

    ``order[i]`` is the input index of row ``i`` (identity unless sorted by length).
    """

    word_embs: np.ndarray
    pos_ohot: np.ndarray
    sent_lens: np.ndarray
    order: np.ndarray


class WordVectorizer:
    """Word vectors + POS one-hots for ``word/POS`` tokens, with counted unknown-word fallbacks."""

    def __init__(self, vectors: np.ndarray, words: Sequence[str], source: str = "<memory>") -> None:
        vectors = np.asarray(vectors)
        if vectors.ndim != 2 or vectors.shape[0] != len(words):
            raise DataError(f"vectors {vectors.shape} do not match {len(words)} words", path=source)
        missing = [token for token in SPECIAL_TOKENS if token not in set(words)]
        if missing:
            raise DataError(
                f"vocabulary lacks the special tokens {missing} (sos/eos/unk are required)", path=source
            )
        self.vectors = vectors.astype(np.float32, copy=False)
        self.words = list(words)
        self.word_to_row = {word: row for row, word in enumerate(self.words)}
        self.source = source
        self.unknown_counts: Counter[str] = Counter()
        self.num_lookups = 0
        self._eye = np.eye(NUM_POS, dtype=np.float32)

    # ------------------------------------------------------------------ loading
    @classmethod
    def load_our_vab(cls, folder: str | Path, prefix: str = "our_vab") -> WordVectorizer:
        """Load ``{prefix}_data.npy``, ``{prefix}_words.pkl`` (list), ``{prefix}_idx.pkl`` (word -> row)."""
        folder = Path(folder)
        data_path = folder / f"{prefix}_data.npy"
        try:
            vectors = np.load(data_path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise DataError(f"cannot load word vectors ({err})", path=data_path) from err
        words = load_plain_pickle(folder / f"{prefix}_words.pkl")
        index = load_plain_pickle(folder / f"{prefix}_idx.pkl")
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise DataError("expected a list of words", path=folder / f"{prefix}_words.pkl")
        if not isinstance(index, dict):
            raise DataError("expected a dict word -> row", path=folder / f"{prefix}_idx.pkl")
        bad = [w for w in words if not (isinstance(index.get(w), int) and 0 <= index[w] < len(vectors))]
        if bad:
            raise DataError(
                f"{len(bad)} word(s) without a valid row, e.g. {bad[:5]}", path=folder / f"{prefix}_idx.pkl"
            )
        # Upstream maps each listed word through the index file; reorder rows accordingly.
        return cls(np.asarray(vectors)[[index[w] for w in words]], words, source=str(data_path))

    @classmethod
    def load_keyed_vectors(
        cls,
        path: str | Path,
        file_format: Literal["glove", "word2vec", "word2vec_binary"] = "glove",
        missing_specials: Literal["error", "zeros"] = "error",
    ) -> WordVectorizer:
        """Load a GloVe text file (no header), word2vec text or binary file with gensim ``KeyedVectors``.

        Such files usually lack ``sos``/``eos``/``unk``. ``missing_specials="zeros"`` appends zero vectors
        for them (logged); the default raises, because the evaluator was trained with real rows for them.
        """
        from gensim.models import KeyedVectors  # lazy: gensim import costs ~1 s

        path = Path(path)
        try:
            keyed = KeyedVectors.load_word2vec_format(
                str(path), binary=file_format == "word2vec_binary", no_header=file_format == "glove"
            )
        except (OSError, ValueError, UnicodeDecodeError, EOFError) as err:
            raise DataError(f"cannot read {file_format} vectors ({err})", path=path) from err
        words = list(keyed.index_to_key)
        vectors = np.asarray(keyed.vectors, dtype=np.float32)
        absent = [token for token in SPECIAL_TOKENS if token not in keyed.key_to_index]
        if absent and missing_specials == "zeros":
            logger.warning("%s: no vectors for %s; using zero vectors", path, absent)
            words += absent
            vectors = np.concatenate([vectors, np.zeros((len(absent), vectors.shape[1]), np.float32)])
        return cls(vectors, words, source=str(path))

    # ------------------------------------------------------------------ lookups
    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    def __contains__(self, word: str) -> bool:
        return word in self.word_to_row

    def reset_counts(self) -> None:
        self.unknown_counts.clear()
        self.num_lookups = 0

    def _rows_and_pos(self, tokens: Sequence[str]) -> tuple[list[int], list[int]]:
        """Vocabulary rows and POS indices; unknown words -> (unk row, OTHER), counted."""
        rows, tags = [], []
        unk_row, other = self.word_to_row[UNK], POS_ENUMERATOR["OTHER"]
        for token in tokens:
            word, tag = split_token(token)
            self.num_lookups += word not in SPECIAL_TOKENS
            row = self.word_to_row.get(word)
            if row is None:
                self.unknown_counts[word] += 1
                rows.append(unk_row)
                tags.append(other)
            else:
                rows.append(row)
                tags.append(pos_index(_VIP_OF_WORD.get(word, tag)))
        return rows, tags

    def __getitem__(self, token: str) -> tuple[np.ndarray, np.ndarray]:
        """``"word/POS"`` -> ``(word_vector [D], pos_onehot [15])`` (float32)."""
        rows, tags = self._rows_and_pos([token])
        return self.vectors[rows[0]], self._eye[tags[0]]

    def caption_arrays(
        self, tokens: Sequence[str], max_text_len: int = DEFAULT_MAX_TEXT_LEN
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """One caption -> ``(word_embs [max+2, D], pos_ohot [max+2, 15], sent_len)``, sos/eos/unk framed."""
        framed, sent_len = pad_caption_tokens(tokens, max_text_len)
        rows, tags = self._rows_and_pos(framed)
        return self.vectors[rows], self._eye[tags], sent_len

    def batch(
        self,
        token_lists: Sequence[Sequence[str]],
        max_text_len: int = DEFAULT_MAX_TEXT_LEN,
        sort_by_length: bool = False,
    ) -> CaptionBatch:
        """Collate captions; ``sort_by_length`` orders rows by ``sent_len`` descending (stable), like
        upstream's collate (our text encoder does not need the sort)."""
        arrays = [self.caption_arrays(tokens, max_text_len) for tokens in token_lists]
        if not arrays:
            raise DataError("no captions to collate", field="tokens")
        sent_lens = np.array([a[2] for a in arrays], dtype=np.int64)
        order = np.argsort(-sent_lens, kind="stable") if sort_by_length else np.arange(len(arrays))
        return CaptionBatch(
            word_embs=np.stack([arrays[i][0] for i in order]),
            pos_ohot=np.stack([arrays[i][1] for i in order]),
            sent_lens=sent_lens[order],
            order=order,
        )

    def unknown_report(self, top: int = 10) -> str:
        """One line for logs: how many lookups fell back to ``unk`` and the most frequent such words."""
        total = sum(self.unknown_counts.values())
        common = ", ".join(f"{w}×{n}" for w, n in self.unknown_counts.most_common(top))
        return f"{total}/{self.num_lookups} word lookups used 'unk'" + (f" ({common})" if common else "")


def save_our_vab(
    vectors: np.ndarray, words: Sequence[str], folder: str | Path, prefix: str = "our_vab"
) -> Path:
    """Write ``{prefix}_data.npy`` / ``_words.pkl`` / ``_idx.pkl`` (the evaluator's GloVe layout), atomically.

    Used for toy vocabularies (e.g. trained with gensim); ``sos``, ``eos`` and ``unk`` must be included.
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    words = list(words)
    if vectors.ndim != 2 or vectors.shape[0] != len(words):
        raise ValueError(f"vectors {vectors.shape} do not match {len(words)} words")
    if len(set(words)) != len(words):
        raise ValueError("duplicate words in the vocabulary")
    WordVectorizer(vectors, words)  # validates the special tokens
    folder = Path(folder)
    atomic_write(folder / f"{prefix}_data.npy", lambda handle: np.save(handle, vectors))
    atomic_write_bytes(pickle.dumps(words, protocol=4), folder / f"{prefix}_words.pkl")
    atomic_write_bytes(
        pickle.dumps({w: i for i, w in enumerate(words)}, protocol=4), folder / f"{prefix}_idx.pkl"
    )
    return folder
