"""unihead: one EfficientNet-B0 + FPN network learning segmentation, detection and
classification in sequence, with remedies for catastrophic forgetting."""

__version__ = "0.1.0"
