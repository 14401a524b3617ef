"""The classifier sees what it was trained on: its preprocessing against Pillow's, on real photographs.

The reference is how torchvision and timm feed ImageNet classifiers: the
whole photo resized with Pillow's antialiased bicubic filter so its shorter
side is 256, then the centre 224x224. Plain cubic interpolation aliases on
large downscales (the embedded model's confidence on a 1080x810 cat fell from
0.28 to 0.14); streamer's own preprocessing must give the reference's top-1
class with a confidence within 0.02 of it, from 300x200 to 4000x3000.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from skimage import data

from streamer.tasks import Classifier


def reference_crop(image: np.ndarray, size: int = 224, shorter: int = 256) -> np.ndarray:
    """The whole image resized by Pillow (bicubic, antialiased), then the centre cropped: the expensive way."""
    height, width = image.shape[:2]
    scale = shorter / min(height, width)
    new_w, new_h = round(width * scale), round(height * scale)
    resized = Image.fromarray(image).resize((new_w, new_h), Image.Resampling.BICUBIC)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    return np.asarray(resized.crop((left, top, left + size, top + size)))


def photograph(name: str, size: tuple[int, int]) -> np.ndarray:
    """A real photograph at ``size``; past 1000 pixels a 3x3 mosaic of it, so the large ones keep fine detail
    (an upscaled photo would be too smooth to alias)."""
    picture = getattr(data, name)()
    if size[0] > 1000:
        picture = np.tile(picture, (3, 3, 1))
    return np.asarray(Image.fromarray(picture).resize(size, Image.Resampling.LANCZOS))


@pytest.mark.parametrize("name", ["chelsea", "coffee", "astronaut", "rocket"])
@pytest.mark.parametrize("size", [(300, 200), (1080, 810), (1920, 1080), (4000, 3000)])
def test_top1_and_confidence_match_pillow_preprocessing(
    classifier: Classifier, name: str, size: tuple[int, int]
) -> None:
    image = photograph(name, size)
    stage = classifier.classifier
    assert stage is not None
    expected = stage.scores([reference_crop(image)])[0]
    got = stage.scores([stage.fit(image)])[0]
    best = int(expected.argmax())
    assert int(got.argmax()) == best, (name, size)
    assert abs(float(got[best]) - float(expected[best])) <= 0.02, (name, size, got[best], expected[best])
