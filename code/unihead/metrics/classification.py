"""Top-k accuracy accumulated over batches."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor


class TopKAccuracy:
    def __init__(self, ks: Sequence[int] = (1, 5)) -> None:
        self.ks = tuple(ks)
        self.correct = dict.fromkeys(self.ks, 0)
        self.count = 0
        self.top1_hits: list[int] = []
        """Each sample's top-1 hit (1) or miss (0), in order: the per-image record of classification."""

    def update(self, logits: Tensor, labels: Tensor) -> None:
        if logits.dim() != 2 or labels.shape != logits.shape[:1]:
            raise ValueError(f"expected logits [B, C] and labels [B], got {tuple(logits.shape)} and "
                             f"{tuple(labels.shape)}")
        ranked = logits.topk(min(max(self.ks), logits.shape[1]), dim=1).indices
        hits = ranked == labels.view(-1, 1)
        for k in self.ks:
            self.correct[k] += int(hits[:, :k].any(dim=1).sum())
        self.count += labels.numel()
        self.top1_hits += hits[:, 0].int().tolist()

    def compute(self) -> dict[str, float]:
        if self.count == 0:
            raise ValueError("top-k accuracy of no samples")
        return {f"top{k}": self.correct[k] / self.count for k in self.ks}
