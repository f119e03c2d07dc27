"""The metrics, one module per task (``classification``, ``segmentation``, ``detection``) and the per-image records
that recompute them on resamples (``per_image``). Imported by module, so that ``per_image`` (no torch) can be used
without the others (torch, pycocotools): the forgetting tables and the workflow's host side read it."""
