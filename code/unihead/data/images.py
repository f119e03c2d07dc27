"""Reading image files with errors that name the file."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, UnidentifiedImageError

from unihead.data.errors import DatasetError


def read_image(path: Path, mode: str = "RGB") -> Image.Image:
    """The image at ``path`` fully decoded (so a truncated file fails here, not later)."""
    try:
        with Image.open(path) as image:
            image.load()
            return image.convert(mode) if mode and image.mode != mode else image.copy()
    except FileNotFoundError as err:
        raise DatasetError(f"{path}: image file not found") from err
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise DatasetError(f"{path}: unreadable image ({err})") from err


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DatasetError(f"{path}: {what} folder not found")
    return path
