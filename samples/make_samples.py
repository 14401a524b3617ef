"""Regenerate the bundled sample images from scikit-image's public-domain photographs.

Run from the repository root: ``python samples/make_samples.py`` (needs the
test extra: ``pip install -e '.[test]'``).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from skimage import data

HERE = Path(__file__).resolve().parent


def collage(tile: tuple[int, int] = (480, 320)) -> np.ndarray:
    """Four photographs in a 2x2 grid: a cup, a motorbike, a person, a cat (RGB)."""
    photos = [data.coffee(), data.stereo_motorcycle()[0], data.astronaut(), data.chelsea()]
    tiles = [cv2.resize(photo, tile, interpolation=cv2.INTER_AREA) for photo in photos]
    return np.vstack([np.hstack(tiles[:2]), np.hstack(tiles[2:])])


def main() -> None:
    images = {"chelsea": data.chelsea(), "coffee": data.coffee(), "collage": collage()}
    for name, rgb in images.items():
        cv2.imwrite(str(HERE / f"{name}.jpg"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])


if __name__ == "__main__":
    main()
