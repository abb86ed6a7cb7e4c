"""Batch sampling: length grouping keeps each epoch's samples and cuts padding; distributed sharding
without duplicates; resume inside an epoch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from data_engine.annotations import load_annotation_files
from data_engine.datasets.spec import get_dataset_spec
from models.llm.model import load_tokenizer
from models.llm.sft_dataset import MotionCodeSource, SFTBatchSampler, SFTDataset, padding_fraction
from models.llm.vocab import add_motion_tokens
from models.vqvae.token_cache import TokenCache


def rank_batches(lengths, batch_size, world_size, epoch, **kwargs) -> list[list[list[int]]]:
    out = []
    for rank in range(world_size):
        sampler = SFTBatchSampler(lengths, batch_size, rank=rank, world_size=world_size, **kwargs)
        sampler.set_epoch(epoch)
        batches = [[index for e, index in batch if e == epoch] for batch in sampler]
        assert len(batches) == len(sampler)
        out.append(batches)
    return out


@pytest.mark.parametrize("count,batch_size,world_size", [(103, 4, 1), (103, 4, 2), (101, 8, 3), (9, 4, 2)])
@pytest.mark.parametrize("group", [False, True])
def test_every_item_once_per_epoch_on_all_ranks(count, batch_size, world_size, group) -> None:
    lengths = np.random.default_rng(0).integers(10, 500, count)
    sharded = rank_batches(
        lengths, batch_size, world_size, epoch=2, group_by_length=group, seed=5, mega_batch_mult=4
    )
    assert len({len(batches) for batches in sharded}) == 1  # ranks step in lockstep
    seen = [i for batches in sharded for batch in batches for i in batch]
    assert len(seen) == len(set(seen))  # no duplicates
    sampler = SFTBatchSampler(lengths, batch_size, world_size=world_size)
    assert len(seen) == count - sampler.dropped_per_epoch and sampler.dropped_per_epoch < world_size
    assert all(batch for batches in sharded for batch in batches)
    for step in range(len(sharded[0])):  # micro-batch sizes of one step differ by at most one item
        sizes = [len(batches[step]) for batches in sharded]
        assert max(sizes) <= batch_size and max(sizes) - min(sizes) <= 1


def test_epochs_reshuffle_and_resume_skips_consumed_batches() -> None:
    lengths = np.arange(64)
    sampler = SFTBatchSampler(lengths, 4, seed=1, group_by_length=True, mega_batch_mult=2)
    sampler.set_epoch(0)
    first = list(sampler)
    sampler.set_epoch(1)
    assert list(sampler) != [[(1, i) for _, i in b] for b in first]
    sampler.set_epoch(0, start_batch=5)
    assert list(sampler) == first[5:]
    assert max(lengths[[i for _, i in first[0]]]) == lengths.max()  # longest batch first


@pytest.fixture(scope="module")
def stage1_lengths(toy_world, smoke_llm: Path):
    spec = get_dataset_spec("t2m")
    tokenizer = load_tokenizer(smoke_llm)
    vocab = add_motion_tokens(tokenizer)
    records = load_annotation_files(toy_world["stage1"], id_digits=6)
    dataset = SFTDataset(
        records, MotionCodeSource(TokenCache.open(toy_world["cache"]), spec), tokenizer, vocab
    )
    real = np.array([len(dataset[(0, i)].input_ids) for i in range(len(dataset))])
    return dataset.estimated_lengths, real


def test_length_grouping_keeps_samples_and_cuts_padding(stage1_lengths) -> None:
    estimated, real = stage1_lengths
    assert np.corrcoef(estimated, real)[0, 1] > 0.8
    plain = rank_batches(estimated, 16, 1, epoch=0, seed=0)[0]
    grouped = rank_batches(estimated, 16, 1, epoch=0, seed=0, group_by_length=True)[0]
    assert (
        sorted(i for b in plain for i in b) == sorted(i for b in grouped for i in b) == list(range(len(real)))
    )
    random_pad, grouped_pad = padding_fraction(plain, real), padding_fraction(grouped, real)
    assert grouped_pad < 0.6 * random_pad, (grouped_pad, random_pad)
