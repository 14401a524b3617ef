"""Still images from files, decoded by OpenCV into RGB arrays."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from streamer.errors import ImageError, InputNotFoundError

__all__ = ["decode_image", "read_image"]


def read_image(path: Path) -> np.ndarray:
    """Decode ``path`` into an ``[H, W, 3]`` ``uint8`` RGB array.

    Raises :class:`InputNotFoundError` if there is no such file and
    :class:`ImageError` if it is not an image OpenCV can decode.
    """
    if not path.exists():
        raise InputNotFoundError(f"image {path} does not exist")
    if not path.is_file():
        raise ImageError(f"{path} is not a file; give image files (PNG, JPEG, BMP, TIFF, WebP)")
    return decode_image(path.read_bytes(), str(path))


def decode_image(data: bytes, name: str) -> np.ndarray:
    """Decode image bytes (PNG, JPEG, BMP, TIFF, WebP) into RGB; ``name`` says in errors what they were."""
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    except cv2.error:
        image = None
    if image is None:
        raise ImageError(
            f"{name} is not an image OpenCV can decode ({len(data)} bytes); give a PNG, JPEG, BMP, TIFF or WebP file"
        )
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
