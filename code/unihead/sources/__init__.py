"""Where the datasets on disk come from: the official downloads and their archives, the id lists that
define the mini datasets, the synthetic generator, and the preparation of a data root with its manifest.

What a sample of a dataset is (the readers) is :mod:`unihead.data`.
"""

from unihead.sources.synthetic import write_synthetic_dataset

__all__ = ["write_synthetic_dataset"]
