"""Knowledge distillation and experience replay together (the paper's future work)."""

from __future__ import annotations

from dataclasses import dataclass

from unihead.strategies.base import register_strategy
from unihead.strategies.kd import KnowledgeDistillation
from unihead.strategies.replay import Replay


@register_strategy("kd_replay")
class KnowledgeDistillationWithReplay(KnowledgeDistillation, Replay):
    """Every hook runs both parents' work (they cooperate through ``super()``); options of both."""

    @dataclass(frozen=True)
    class Options(KnowledgeDistillation.Options, Replay.Options):
        pass
