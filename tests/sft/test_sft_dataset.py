"""SFT dataset: authors' demo files and toy annotations resolve against a token cache; clear errors;
per-item determinism; overflow policies; collation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from data_engine.annotations import load_annotation_files
from data_engine.datasets.spec import get_dataset_spec
from models.common.errors import DataError
from models.llm.model import load_tokenizer
from models.llm.sequences import IGNORE_INDEX, SequenceTooLongError
from models.llm.sft_dataset import (
    MotionCodeSource,
    SFTBatchSampler,
    SFTCollator,
    SFTDataOptions,
    SFTDataset,
)
from models.llm.vocab import add_motion_tokens
from models.vqvae.token_cache import TokenCache


@pytest.fixture(scope="module")
def tokenizer_and_vocab(smoke_llm: Path):
    tokenizer = load_tokenizer(smoke_llm)
    return tokenizer, add_motion_tokens(tokenizer)


def make_dataset(files, cache_dir, tokenizer_and_vocab, dataname="t2m", **options) -> SFTDataset:
    spec = get_dataset_spec(dataname)
    records = load_annotation_files(files, id_digits=spec.id_digits)
    tokenizer, vocab = tokenizer_and_vocab
    source = MotionCodeSource(TokenCache.open(cache_dir), spec)
    return SFTDataset(records, source, tokenizer, vocab, SFTDataOptions(**options))


def response_codes(example, vocab) -> list[list[int]]:
    """Code lists of the supervised <Motion>...</Motion> blocks."""
    supervised = [
        t for t, label in zip(example.input_ids, example.labels, strict=True) if label != IGNORE_INDEX
    ]
    blocks, current = [], None
    for token in supervised:
        if token == vocab.motion_start_id:
            current = []
        elif token == vocab.motion_end_id and current is not None:
            blocks.append(current)
            current = None
        elif current is not None:
            current.append(token - vocab.first_code_id)
    return blocks


def test_authors_demo_files_resolve_with_cached_codes(demo_world, tokenizer_and_vocab) -> None:
    dataset = make_dataset(demo_world["hml_files"], demo_world["hml_cache"], tokenizer_and_vocab)
    vocab = tokenizer_and_vocab[1]
    cache = dataset.source.cache
    assert len(dataset) == 8 * 11 + 10
    tasks = set()
    for epoch in (0, 1):
        for index in range(len(dataset)):
            example = dataset[(epoch, index)]
            assert len(example.input_ids) == len(example.labels) <= 2048
            assert any(label != IGNORE_INDEX for label in example.labels)
            tasks.add(example.task)
            sample = dataset.resolve(index, epoch)
            goal = sample.motions.get("<Goal_Motion>")
            if example.task == "t2m_direct_generation" and not example.truncated:
                # the response is exactly the goal motion's cached codes at the drawn crop offset
                motion_id, start, end = dataset.source.span(goal)
                expected = cache.codes(motion_id, start, end, sample.crop_offsets["<Goal_Motion>"]).tolist()
                assert response_codes(example, vocab) == [expected]
    assert {
        "t2m_direct_generation",
        "m2t_motion_caption",
        "tm2m_direct_refinement",
        "unified_mogen_cot_v2",
    } <= tasks


def test_subclip_references_map_to_frame_spans(demo_world, tokenizer_and_vocab) -> None:
    dataset = make_dataset(demo_world["hml_files"], demo_world["hml_cache"], tokenizer_and_vocab)
    subclips = [
        ref
        for record in dataset.records
        for candidate in record.candidates
        for ref in candidate.motions.values()
        if ref is not None and not ref.whole_clip
    ]
    assert subclips
    for ref in subclips:
        motion_id, start, end = dataset.source.span(ref)
        assert (start, end) == (int(ref.f_tag * 20), int(ref.to_tag * 20))
        assert motion_id == ref.motion_name.split("_")[0] or motion_id in ref.motion_name
        assert dataset.source.variants(ref) >= 1


def test_kit_stage0_demo_with_five_digit_ids(demo_world, tokenizer_and_vocab) -> None:
    dataset = make_dataset(
        demo_world["kit_files"], demo_world["kit_cache"], tokenizer_and_vocab, dataname="kit"
    )
    assert len(dataset) == 3
    for index in range(3):
        assert response_codes(dataset[index], tokenizer_and_vocab[1])
    with pytest.raises(DataError, match="6-digit"):
        make_dataset(demo_world["kit_files"], demo_world["kit_cache"], tokenizer_and_vocab, dataname="t2m")


def test_toy_annotations_resolve(toy_world, tokenizer_and_vocab) -> None:
    dataset = make_dataset(toy_world["stage1"], toy_world["cache"], tokenizer_and_vocab)
    tasks = {dataset[index].task for index in range(len(dataset))}
    assert len(tasks) == 8
    assert len(dataset) == 8 * len(
        make_dataset(toy_world["stage0"][:1], toy_world["cache"], tokenizer_and_vocab)
    )


def test_missing_motion_names_file_record_field_and_motion(demo_world, tokenizer_and_vocab, tmp_path) -> None:
    source = demo_world["hml_files"][6]  # TM2T_assessment_analysis: candidate lists
    data = json.loads(source.read_text(encoding="utf-8"))
    data["annotations"][3]["candidate_motion_text"][2]["motions"]["<Generated_Motion>"]["motion_name"] = (
        "M012345"
    )
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(DataError) as info:
        make_dataset([broken], demo_world["hml_cache"], tokenizer_and_vocab)
    message = str(info.value)
    assert str(broken) in message and "record #3" in message
    assert "candidate_motion_text[2].motions.<Generated_Motion>" in message
    assert "M012345" in message and "1 of" in message

    data["annotations"][3]["candidate_motion_text"][2]["motions"]["<Generated_Motion>"] = {
        "motion_name": "000002",
        "f_tag": 1.0,
        "to_tag": 2.5,
    }  # a sub-clip the cache was not built for
    broken.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(DataError, match=r"frames \[20, 50\)"):
        make_dataset([broken], demo_world["hml_cache"], tokenizer_and_vocab)


def test_items_do_not_depend_on_workers_or_order(toy_world, tokenizer_and_vocab) -> None:
    dataset = make_dataset(toy_world["stage1"], toy_world["cache"], tokenizer_and_vocab)
    sampler = SFTBatchSampler(dataset.estimated_lengths, 8, seed=3)
    collate = SFTCollator(tokenizer_and_vocab[0].pad_token_id)

    def epoch_ids(workers: int, epoch: int) -> dict[int, list[int]]:
        sampler.set_epoch(epoch)
        loader = torch.utils.data.DataLoader(
            dataset, batch_sampler=sampler, collate_fn=collate, num_workers=workers
        )
        out = {}
        for batch in loader:
            for row, index in enumerate(batch["indices"]):
                out[index] = batch["input_ids"][row][batch["attention_mask"][row].bool()].tolist()
        return out

    serial, parallel = epoch_ids(0, 1), epoch_ids(2, 1)
    assert serial == parallel and len(serial) == len(dataset)
    reverse = {i: dataset[(1, i)].input_ids for i in reversed(range(len(dataset)))}
    assert reverse == serial
    other_epoch = epoch_ids(0, 2)
    assert sum(other_epoch[i] != serial[i] for i in serial) > len(serial) // 2  # fresh draws per epoch


def test_overflow_policies(toy_world, tokenizer_and_vocab) -> None:
    files = toy_world["stage1"][6:7]  # direct refinement: two motions per item
    full = make_dataset(files, toy_world["cache"], tokenizer_and_vocab)
    longest = max(range(len(full)), key=lambda i: full[i].full_length)
    limit = full[longest].full_length - 5
    truncated = make_dataset(files, toy_world["cache"], tokenizer_and_vocab, max_length=limit)[longest]
    assert truncated.truncated and len(truncated.input_ids) == limit and truncated.full_length == limit + 5
    skipped = make_dataset(
        files, toy_world["cache"], tokenizer_and_vocab, max_length=limit, on_overflow="skip"
    )
    assert skipped[longest].skipped and set(skipped[longest].labels) == {IGNORE_INDEX}
    with pytest.raises(SequenceTooLongError, match="record"):
        make_dataset(files, toy_world["cache"], tokenizer_and_vocab, max_length=limit, on_overflow="error")[
            longest
        ]
    batch = SFTCollator(0)([full[0], truncated, skipped[longest]])
    assert batch["stats"]["truncated"] == 1 and batch["stats"]["skipped"] == 1


def test_collator_pads_right(toy_world, tokenizer_and_vocab) -> None:
    dataset = make_dataset(toy_world["stage0"], toy_world["cache"], tokenizer_and_vocab)
    items = [dataset[i] for i in range(5)]
    batch = SFTCollator(pad_token_id=0, pad_to_multiple_of=8)(items)
    lengths = [len(e.input_ids) for e in items]
    assert batch["input_ids"].shape[1] % 8 == 0 and batch["input_ids"].shape[1] >= max(lengths)
    for row, item in enumerate(items):
        n = lengths[row]
        assert batch["input_ids"][row, :n].tolist() == item.input_ids
        assert batch["labels"][row, :n].tolist() == item.labels
        assert batch["attention_mask"][row].sum() == n
        assert (batch["labels"][row, n:] == IGNORE_INDEX).all() and (batch["input_ids"][row, n:] == 0).all()
    stats = batch["stats"]
    assert stats["tokens"] == sum(lengths) and stats["padded_tokens"] == batch["input_ids"].numel()
    assert stats["supervised"] == int((batch["labels"] != IGNORE_INDEX).sum())
    assert np.isclose(stats["tokens"] / stats["padded_tokens"], batch["attention_mask"].float().mean())
