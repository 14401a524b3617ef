"""Regenerate the bundled samples from scikit-image's public-domain photographs.

``chelsea.jpg``, ``coffee.jpg``, ``collage.jpg`` (a 2x2 grid: cup, motorbike,
person, cat) and ``street.mp4`` (6 s at 15 fps panning across the collage,
H.264 without B-frames: the demo's looping camera).

Run from the repository root: ``python samples/make_samples.py`` (needs the
test extra: ``pip install -e '.[test]'``).
"""

from __future__ import annotations

import sys
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
    # A small clip panning across the collage: the demo's looping "camera".
    sys.path.insert(0, str(HERE.parent))  # tests/media.py makes clips for the tests too
    from tests.media import make_clip

    options = {"preset": "slow", "crf": "30", "g": "15", "bf": "0"}
    make_clip(HERE / "street.mp4", frames=90, fps=15, size=(640, 426), options=options)


if __name__ == "__main__":
    main()
