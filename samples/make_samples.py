"""Regenerate the bundled sample images from scikit-image's public-domain photographs.

Run from the repository root: ``python samples/make_samples.py`` (needs the
test extra: ``pip install -e '.[test]'``).
"""

from __future__ import annotations

from pathlib import Path

import cv2
from skimage import data

HERE = Path(__file__).resolve().parent


def main() -> None:
    for name in ("chelsea", "coffee"):
        rgb = getattr(data, name)()
        cv2.imwrite(str(HERE / f"{name}.jpg"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])


if __name__ == "__main__":
    main()
