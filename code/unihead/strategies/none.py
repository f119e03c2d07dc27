"""Plain sequential fine-tuning: the reference that forgets."""

from unihead.strategies.base import Strategy, register_strategy


@register_strategy("none")
class NoStrategy(Strategy):
    """Trains each task in turn with its own loss only."""
