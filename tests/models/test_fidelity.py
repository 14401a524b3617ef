"""The classifier sees what it was trained on: its preprocessing against Pillow's, on real photographs.

The reference is how torchvision and timm feed ImageNet classifiers: the whole photo resized with
Pillow's antialiased bicubic filter so its shorter side is the model's declared ``resize_shorter``
(256), then the centre 224x224, normalised as the model declares. streamer's own preprocessing
(``stage.fit``: OpenCV, only the crop's pixels) must give the reference's top-1 class with a
confidence within 0.02 of it, from 300x200 to 4000x3000 (measured: within 0.017). A plain cubic
warp, what streamer did before, misses by up to 0.44 here (the motorbike at 1920x1080: 0.05 where
Pillow gives 0.49) and changes the top-1 class in 4 of these 24 cases.

Photos whose top-1 is a near tie are left out: Pillow's own rounding (it rounds between its two
passes) moves the rocket and the collage by up to 0.03, so even an exact float implementation of
Pillow's filter misses them by that much.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from streamer.tasks import Classifier
from tests.media import photo


def reference_crop(image: np.ndarray, size: tuple[int, int], shorter: int) -> np.ndarray:
    """The whole image resized by Pillow (bicubic, antialiased), then the centre cropped: the expensive way."""
    height, width = image.shape[:2]
    scale = shorter / min(height, width)
    new_w, new_h = round(width * scale), round(height * scale)
    resized = Image.fromarray(image).resize((new_w, new_h), Image.Resampling.BICUBIC)
    left, top = (new_w - size[0]) // 2, (new_h - size[1]) // 2
    return np.asarray(resized.crop((left, top, left + size[0], top + size[1])))


def photograph(name: str, size: tuple[int, int]) -> np.ndarray:
    """A real photograph at ``size``; past 1000 pixels a 3x3 mosaic of it, so the large ones keep fine
    detail (an upscaled photo would be too smooth to alias)."""
    picture = photo(name)
    if size[0] > 1000:
        picture = np.tile(picture, (3, 3, 1))
    return np.asarray(Image.fromarray(picture).resize(size, Image.Resampling.LANCZOS))


@pytest.mark.parametrize("name", ["chelsea", "coffee", "astronaut", "stereo_motorcycle"])
@pytest.mark.parametrize("size", [(300, 200), (640, 480), (1080, 810), (1920, 1080), (4000, 3000), (3000, 4000)])
def test_top1_and_confidence_match_pillow_preprocessing(
    classifier: Classifier, name: str, size: tuple[int, int]
) -> None:
    stage = classifier.classifier
    assert stage is not None and stage.declaration.resize == "crop"
    shorter = stage.declaration.resize_shorter or round(min(stage.input_size) / 0.875)
    image = photograph(name, size)
    expected, got = stage.scores([reference_crop(image, stage.input_size, shorter), stage.fit(image)])
    best = int(expected.argmax())
    assert int(got.argmax()) == best, (name, size, float(got.max()), float(expected[best]))
    assert abs(float(got[best]) - float(expected[best])) <= 0.02, (name, size, float(got[best]), float(expected[best]))
