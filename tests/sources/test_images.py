"""Image files decoded into RGB arrays."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from streamer.errors import ImageError, InputNotFoundError
from streamer.sources.images import read_image


def test_png_comes_back_as_rgb(tmp_path: Path) -> None:
    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[..., 0] = 200  # red
    path = tmp_path / "red.png"
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    image = read_image(path)
    assert image.shape == (4, 6, 3) and image.dtype == np.uint8
    assert image[0, 0].tolist() == [200, 0, 0]


def test_bundled_samples_decode() -> None:
    samples = Path(__file__).resolve().parents[2] / "samples"
    assert read_image(samples / "chelsea.jpg").shape == (300, 451, 3)


def test_missing_text_empty_and_folder(tmp_path: Path) -> None:
    with pytest.raises(InputNotFoundError, match=r"image .*gone\.png does not exist"):
        read_image(tmp_path / "gone.png")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ImageError, match=r"notes\.txt is not an image OpenCV can decode \(5 bytes\)"):
        read_image(text)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(ImageError, match=r"empty\.jpg is not an image OpenCV can decode \(0 bytes\)"):
        read_image(empty)
    with pytest.raises(ImageError, match="is not a file"):
        read_image(tmp_path)
