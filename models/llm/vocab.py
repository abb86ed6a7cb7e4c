"""The motion vocabulary: ``<Motion>``, ``</Motion>`` and one ``<Motion_k>`` token per VQ code.

The layout is the one Motion-Agent and IRG-MotionLLM use (and that their checkpoints depend on):
with ``N = len(tokenizer)`` before the extension,

* ``<Motion>`` = ``N``, ``</Motion>`` = ``N + 1``, ``<Motion_k>`` = ``N + 2 + k`` for ``k < nb_code``,
* the motion tokens are the LAST ``nb_code + 2`` ids, so ``len(tokenizer) == N + nb_code + 2``
  (256000, 256001, 256002 + k and 256514 for Gemma-2),
* "local index" = ``id - N``: 0 is ``<Motion>``, 1 is ``</Motion>``, ``2 + k`` is code ``k``.

The tokens are plain (non-special) added tokens, so ``decode`` keeps them, the decoded text of a code
sequence is ``<Motion_a><Motion_b>...`` without separators, and re-tokenising it gives the same ids.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

if TYPE_CHECKING:
    import torch

MOTION_START = "<Motion>"
MOTION_END = "</Motion>"
_CODE_TOKEN = re.compile(r"^<Motion_(\d+)>$")

ArrayLike = TypeVar("ArrayLike", np.ndarray, "torch.Tensor")


def code_token(code: int) -> str:
    """The token string of VQ code ``code`` (``<Motion_17>``)."""
    return f"<Motion_{code}>"


def _as_array(values: Any) -> Any:
    """Torch tensors and numpy arrays pass through; anything else (lists, ints) becomes numpy int64."""
    if isinstance(values, np.ndarray) or type(values).__module__.startswith("torch"):
        return values
    return np.asarray(values, dtype=np.int64)


def _size(values: Any) -> int:
    return values.numel() if hasattr(values, "numel") else values.size


@dataclass(frozen=True)
class MotionVocab:
    """Id arithmetic of the motion tokens appended after ``nb_text_tokens`` text tokens."""

    nb_text_tokens: int
    nb_code: int = 512

    def __post_init__(self) -> None:
        if self.nb_text_tokens <= 0 or self.nb_code <= 0:
            raise ValueError(
                f"invalid MotionVocab(nb_text_tokens={self.nb_text_tokens}, nb_code={self.nb_code})"
            )

    @property
    def motion_start_id(self) -> int:
        return self.nb_text_tokens

    @property
    def motion_end_id(self) -> int:
        return self.nb_text_tokens + 1

    @property
    def first_code_id(self) -> int:
        return self.nb_text_tokens + 2

    @property
    def nb_motion_tokens(self) -> int:
        """Tags plus codes (514 for 512 codes): the row count of Motion-Agent's embedding checkpoints."""
        return self.nb_code + 2

    @property
    def vocab_size(self) -> int:
        """Total number of ids (= embedding rows): 256514 for Gemma-2 with 512 codes."""
        return self.nb_text_tokens + self.nb_motion_tokens

    @property
    def tokens(self) -> list[str]:
        """The added token strings in id order."""
        return [MOTION_START, MOTION_END] + [code_token(k) for k in range(self.nb_code)]

    def codes_to_ids(self, codes: ArrayLike | list[int]) -> ArrayLike:
        """VQ codes -> token ids (same container type; lists become numpy). Out-of-range codes raise."""
        codes = _as_array(codes)
        if _size(codes):
            low, high = int(codes.min()), int(codes.max())
            if low < 0 or high >= self.nb_code:
                raise ValueError(f"VQ codes must lie in [0, {self.nb_code}), got values in [{low}, {high}]")
        return codes + self.first_code_id

    def ids_to_codes(self, ids: ArrayLike | list[int]) -> ArrayLike:
        """Token ids of ``<Motion_k>`` -> codes ``k``; any other id (text, tags) raises."""
        ids = _as_array(ids)
        bad = ~self.is_code_id(ids)
        if bad.any():
            first = ids[bad].reshape(-1)[:5].tolist()
            raise ValueError(
                f"not motion-code ids (expected [{self.first_code_id}, {self.vocab_size})): {first}"
            )
        return ids - self.first_code_id

    def is_motion_id(self, ids: ArrayLike | list[int]) -> ArrayLike:
        """Mask of ids in the motion range: the two tags and all codes (upstream's "motion ids")."""
        ids = _as_array(ids)
        return (ids >= self.motion_start_id) & (ids < self.vocab_size)

    def is_code_id(self, ids: ArrayLike | list[int]) -> ArrayLike:
        """Mask of ``<Motion_k>`` ids (tags excluded)."""
        ids = _as_array(ids)
        return (ids >= self.first_code_id) & (ids < self.vocab_size)

    def local_index(self, ids: ArrayLike | list[int]) -> ArrayLike:
        """``id - nb_text_tokens``: 0 = ``<Motion>``, 1 = ``</Motion>``, ``2 + k`` = code ``k``.

        This is the index into the last ``nb_code + 2`` logits used by upstream's restricted argmax.
        """
        return _as_array(ids) - self.nb_text_tokens

    def codes_to_text(self, codes: Any) -> str:
        """``<Motion_a><Motion_b>...`` (what ``tokenizer.decode`` gives for the code ids)."""
        codes = np.asarray(codes.tolist() if hasattr(codes, "tolist") else codes, dtype=np.int64).reshape(-1)
        self.codes_to_ids(codes)  # range check
        return "".join(code_token(int(k)) for k in codes)

    def block_text(self, codes: Any) -> str:
        """``<Motion><Motion_a>...</Motion>``: a motion as it appears in prompts and responses."""
        return f"{MOTION_START}{self.codes_to_text(codes)}{MOTION_END}"

    @classmethod
    def from_tokenizer(cls, tokenizer: Any) -> MotionVocab:
        """Detect the motion-token layout of a tokenizer that already holds the motion tokens.

        Raises ``ValueError`` when the tokens are absent, incomplete, out of order or not the last ids.
        """
        start = tokenizer.convert_tokens_to_ids(MOTION_START)
        unk = tokenizer.unk_token_id
        if start is None or start == unk or tokenizer.convert_ids_to_tokens(start) != MOTION_START:
            raise ValueError(f"tokenizer has no {MOTION_START} token; call add_motion_tokens first")
        codes = sorted(
            int(match.group(1))
            for token in tokenizer.get_added_vocab()
            if (match := _CODE_TOKEN.match(token))
        )
        nb_code = len(codes)
        if nb_code == 0 or codes != list(range(nb_code)):
            first_gap = next((i for i, c in enumerate(codes) if c != i), nb_code)
            raise ValueError(
                f"motion code tokens must be <Motion_0>..<Motion_{{n-1}}> without gaps; found {nb_code} "
                f"code tokens (first missing index {first_gap})"
            )
        vocab = cls(nb_text_tokens=start, nb_code=nb_code)
        _check_layout(tokenizer, vocab)
        return vocab


def _check_layout(tokenizer: Any, vocab: MotionVocab) -> None:
    """Raise ``ValueError`` unless the tokenizer maps every motion token to the upstream id."""
    expected = np.arange(vocab.motion_start_id, vocab.vocab_size)
    actual = np.asarray(tokenizer.convert_tokens_to_ids(vocab.tokens), dtype=np.int64)
    wrong = np.flatnonzero(actual != expected)
    if wrong.size:
        examples = ", ".join(f"{vocab.tokens[i]}={actual[i]} (expected {expected[i]})" for i in wrong[:5])
        raise ValueError(
            f"motion tokens are not in the upstream layout (<Motion>, </Motion>, "
            f"<Motion_0..{vocab.nb_code - 1}> "
            f"as consecutive ids from {vocab.motion_start_id}); {wrong.size} wrong: {examples}"
        )
    if len(tokenizer) != vocab.vocab_size:
        raise ValueError(
            f"motion tokens must be the last ids: len(tokenizer)={len(tokenizer)} but the motion range "
            f"ends at {vocab.vocab_size}"
        )


def add_motion_tokens(tokenizer: Any, nb_code: int = 512) -> MotionVocab:
    """Append ``<Motion>``, ``</Motion>``, ``<Motion_0..nb_code-1>`` as plain added tokens (upstream order).

    Idempotent: a tokenizer that already holds them in the upstream layout (e.g. one saved with a
    checkpoint) is returned unchanged; a partial or differently ordered set raises ``ValueError``.
    """
    added = tokenizer.get_added_vocab()
    present = [t for t in (MOTION_START, MOTION_END) if t in added] + [
        t for t in added if _CODE_TOKEN.match(t)
    ]
    if present:
        vocab = MotionVocab.from_tokenizer(tokenizer)
        if vocab.nb_code != nb_code:
            raise ValueError(f"tokenizer already holds {vocab.nb_code} motion codes, but nb_code={nb_code}")
        return vocab
    vocab = MotionVocab(nb_text_tokens=len(tokenizer), nb_code=nb_code)
    count = tokenizer.add_tokens([MOTION_START, MOTION_END], special_tokens=False)
    count += tokenizer.add_tokens([code_token(k) for k in range(nb_code)], special_tokens=False)
    if count != vocab.nb_motion_tokens:
        raise ValueError(
            f"expected to add {vocab.nb_motion_tokens} motion tokens, the tokenizer added {count}"
        )
    _check_layout(tokenizer, vocab)
    return vocab
