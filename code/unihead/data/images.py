"""Reading image files with errors that name the file: one that cannot be decoded, one whose header claims more
pixels than a dataset image holds (a decompression bomb), one of more than 8 bits per channel (converting it to
RGB would clip it to white), and image files in a dataset folder that its reader would skip."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from unihead.data.errors import DatasetError

MAX_PIXELS = 8192 * 8192
"""Most pixels an image may hold (64 M): the datasets' images hold at most about 0.3 M, and decoding a larger
header (a decompression bomb) would take gigabytes before anything could refuse it."""
DEEP_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")
"""PIL's modes of 16- and 32-bit pixels: converting them to RGB clips every value above 255 (white)."""
IMAGE_FILE_SUFFIXES = frozenset(suffix.lower() for suffix in Image.registered_extensions())
"""Suffixes of the files that PIL knows as images."""


def read_image(path: Path, mode: str = "RGB") -> Image.Image:
    """The image at ``path`` fully decoded (so a truncated file fails here, not later); converted to ``mode`` (RGB)
    unless ``mode`` is empty."""
    try:
        with warnings.catch_warnings():
            # PIL warns of a header above its own limit (89 M pixels): MAX_PIXELS refuses it below that
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
        with image:
            if image.width * image.height > MAX_PIXELS:
                raise DatasetError(f"{path}: image of {image.width}x{image.height} pixels, more than the "
                                   f"{MAX_PIXELS:,} a dataset image may hold (a decompression bomb?)")
            if mode == "RGB" and image.mode in DEEP_MODES:
                raise DatasetError(f"{path}: image of mode {image.mode} (16 or 32 bits per pixel); expected 8 bits "
                                   "per channel (RGB, greyscale or palette): converting it would clip it to white")
            image.load()
            return image.convert(mode) if mode and image.mode != mode else image.copy()
    except FileNotFoundError as err:
        raise DatasetError(f"{path}: image file not found") from err
    except Image.DecompressionBombError as err:
        raise DatasetError(f"{path}: {err} (more than the {MAX_PIXELS:,} pixels a dataset image may hold)") from err
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise DatasetError(f"{path}: unreadable image ({err})") from err


def refuse_skipped_images(folder: Path, reads: Callable[[Path], bool], what: str) -> None:
    """Every image file in ``folder`` is one its reader ``reads``: an image it would skip (``.JPG`` where it reads
    ``.jpg``, a ``.bmp``) would be listed in the manifest but silently left out of training."""
    skipped = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_FILE_SUFFIXES and not reads(p))
    if skipped:
        raise DatasetError(f"{skipped[0]}: an image file that the reader would skip ({len(skipped)} in {folder}); "
                           f"it reads {what}: rename or convert them, or move them out of the dataset folder")


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DatasetError(f"{path}: {what} folder not found")
    return path
