"""Data decoded once per run: every sample is exactly the reader's, with the same random flips."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, Subset

from unihead.data import build_dataset, collate
from unihead.data.decoded import DecodedDataset
from unihead.tasks import TASKS

SIZE = 32
"""Smaller than the synthetic images' 64 px, so the held tensors are resized ones."""


def _same_sample(read, decoded) -> None:
    image, target = read
    held_image, held_target = decoded
    assert held_image.dtype == torch.float32 and torch.equal(held_image, image)
    if isinstance(target, dict):
        assert list(held_target) == list(target)
        for key, value in target.items():
            assert torch.equal(held_target[key], value) if isinstance(value, torch.Tensor) else \
                held_target[key] == value, key
    elif isinstance(target, int):
        assert held_target.dtype == torch.int64 and held_target.item() == target
    else:
        assert held_target.dtype == target.dtype and torch.equal(held_target, target)


@pytest.mark.parametrize("train", [True, False], ids=["train", "val"])
@pytest.mark.parametrize("task", TASKS)
def test_every_sample_is_the_readers_with_the_same_flips(synthetic_root, task, train):
    reader = build_dataset(task, synthetic_root, "train", SIZE, train=train)
    decoded = DecodedDataset(task, synthetic_root, "train", SIZE, train=train, device=torch.device("cpu"))
    assert len(decoded) == len(reader) == 24
    assert decoded.images.dtype == torch.uint8 and decoded.images.shape == (24, 3, SIZE, SIZE)
    torch.manual_seed(5)
    read = [reader[i] for i in range(len(reader))]
    after_reader = torch.rand(1)
    torch.manual_seed(5)
    held = [decoded[i] for i in range(len(decoded))]
    assert torch.equal(torch.rand(1), after_reader)  # the same number of draws from the global generator
    for read_sample, held_sample in zip(read, held, strict=True):
        _same_sample(read_sample, held_sample)
    if train:  # the seed flips some images and not others
        flipped = [torch.equal(r[0], decoded[i][0].flip(-1)) for i, r in enumerate(read)]
        assert any(flipped)


@pytest.mark.parametrize("task", TASKS)
def test_a_shuffled_epoch_draws_the_readers_batches(synthetic_root, task):
    """The engine's loader over the held tensors gives the batches a loader over the reader gave: the
    same order (the loader's generator) and the same flips (the global generator, reseeded per epoch)."""
    reader = Subset(build_dataset(task, synthetic_root, "train", SIZE, train=True), range(10))
    decoded = DecodedDataset(task, synthetic_root, "train", SIZE, train=True, device=torch.device("cpu"), limit=10)

    def epoch(data):
        torch.manual_seed(7)
        loader = DataLoader(data, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(3),
                            collate_fn=collate)
        return list(loader)

    read, held = epoch(reader), epoch(decoded)
    assert [len(images) for images, _ in held] == [4, 4, 2]
    for (images, targets), (held_images, held_targets) in zip(read, held, strict=True):
        assert torch.equal(held_images, images)
        if isinstance(targets, list):
            assert [t["image_id"] for t in held_targets] == [t["image_id"] for t in targets]
            assert all(torch.equal(h["boxes"], t["boxes"]) for h, t in zip(held_targets, targets, strict=True))
        else:
            assert torch.equal(held_targets, targets)


def test_a_limit_keeps_the_first_images_and_the_reader_stays_reachable(synthetic_root):
    decoded = DecodedDataset("det", synthetic_root, "val", SIZE, train=False, device=torch.device("cpu"), limit=5)
    assert len(decoded) == 5 and len(decoded.reader) == 12
    assert [decoded[i][1]["image_id"] for i in range(5)] == decoded.reader.image_ids[:5]
    assert decoded.reader.num_classes == 10


def test_decoding_in_worker_processes_holds_the_same_tensors(synthetic_root):
    alone = DecodedDataset("seg", synthetic_root, "val", SIZE, train=False, device=torch.device("cpu"))
    workers = DecodedDataset("seg", synthetic_root, "val", SIZE, train=False, device=torch.device("cpu"),
                             num_workers=2)
    assert torch.equal(alone.images, workers.images) and torch.equal(alone.masks, workers.masks)
