"""Real-data smoke test: a few optimisation steps on real mini images lower each task's loss."""

from __future__ import annotations

import pytest
import torch

from unihead.config import ModelConfig
from unihead.data import build_dataset, collate
from unihead.losses import task_loss
from unihead.models import build_model

pytestmark = pytest.mark.slow

IMAGE_SIZE = 128
STEPS = 8


@pytest.mark.realdata
@pytest.mark.parametrize(("task", "det_head"), [("seg", "paper"), ("det", "paper"), ("det", "logits"),
                                               ("cls", "paper")])
def test_a_few_steps_on_real_images_lower_the_loss(mini_root, task, det_head):
    torch.manual_seed(0)
    dataset = build_dataset(task, mini_root, "train", IMAGE_SIZE, train=False)
    images, targets = collate([dataset[i] for i in range(4)])
    model = build_model(ModelConfig(det_head=det_head)).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def loss() -> torch.Tensor:
        output = model(images, tasks=[task])[task]
        return task_loss(task, output, targets, det_head=det_head, num_classes=dataset.num_classes)["total"]

    first = loss()
    for _ in range(STEPS):
        optimizer.zero_grad()
        value = loss()
        assert torch.isfinite(value)
        value.backward()
        optimizer.step()
    with torch.no_grad():
        last = loss()
    assert last.item() < 0.8 * first.item(), f"{task}: loss {first.item():.4f} -> {last.item():.4f}"
