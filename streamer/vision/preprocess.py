"""Image preprocessing: pure functions from RGB ``uint8`` arrays to model tensors.

Images are ``[height, width, 3]`` ``uint8`` RGB. Sizes are ``(width, height)``
as in OpenCV. Nothing here reads files or touches a model.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from streamer.errors import ConfigError, ImageError

__all__ = [
    "Letterbox",
    "RegionOfInterest",
    "check_image",
    "crop_box",
    "fit",
    "letterbox",
    "resize_center_crop",
    "roi_pixels",
    "to_tensor",
    "upright",
]


@dataclass(frozen=True)
class RegionOfInterest:
    """A rectangle in normalised coordinates, each in [0, 1], left < right, top < bottom."""

    left: float
    top: float
    right: float
    bottom: float

    def __post_init__(self) -> None:
        values = (self.left, self.top, self.right, self.bottom)
        if not all(0.0 <= v <= 1.0 for v in values) or self.left >= self.right or self.top >= self.bottom:
            raise ConfigError(
                f"region_of_interest = {list(values)!r}; expected [left, top, right, bottom] "
                "in 0..1 with left < right and top < bottom"
            )


@dataclass(frozen=True)
class Letterbox:
    """How a letterboxed image maps back: ``source = (model - pad) / scale``."""

    scale: float
    pad_x: int
    pad_y: int


def upright(image: np.ndarray, rotation: float) -> np.ndarray:
    """``image`` turned the way a player shows it.

    ``rotation`` is a video's display rotation in degrees counter-clockwise
    (PyAV's ``VideoFrame.rotation``, FFmpeg's display matrix), a multiple of
    90; phones record upright video sideways with -90 or 90.
    """
    turns = round(rotation / 90) % 4
    return image if turns == 0 else np.ascontiguousarray(np.rot90(image, turns))


def check_image(image: object) -> np.ndarray:
    """Return ``image`` if it is an ``[H, W, 3]`` ``uint8`` array, else raise :class:`ImageError`."""
    if not isinstance(image, np.ndarray):
        raise ImageError(f"expected a numpy array [height, width, 3] uint8 RGB, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or min(image.shape[:2]) < 1:
        raise ImageError(
            f"expected an image array [height, width, 3] uint8 RGB, got shape {list(image.shape)} {image.dtype}"
        )
    return image


def roi_pixels(shape: tuple[int, ...], roi: RegionOfInterest | None) -> tuple[int, int, int, int]:
    """``roi`` in pixels of an image of ``shape`` as (x1, y1, x2, y2), at least one pixel; all of it for ``None``."""
    height, width = shape[0], shape[1]
    if roi is None:
        return 0, 0, width, height
    x1, y1 = min(int(roi.left * width), width - 1), min(int(roi.top * height), height - 1)
    x2, y2 = max(round(roi.right * width), x1 + 1), max(round(roi.bottom * height), y1 + 1)
    return x1, y1, min(x2, width), min(y2, height)


def crop_box(
    image: np.ndarray, box: np.ndarray | tuple[float, ...], margin: float, min_size: int = 2
) -> np.ndarray | None:
    """The part of ``image`` inside ``box`` (x1, y1, x2, y2 pixels) widened by ``margin`` x its size on
    every side and clipped to the image; ``None`` if the result is under ``min_size`` pixels either way."""
    height, width = image.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    dx, dy = (x2 - x1) * margin, (y2 - y1) * margin
    left, top = max(0, int(np.floor(x1 - dx))), max(0, int(np.floor(y1 - dy)))
    right, bottom = min(width, int(np.ceil(x2 + dx))), min(height, int(np.ceil(y2 + dy)))
    if right - left < min_size or bottom - top < min_size:
        return None
    return image[top:bottom, left:right]


def resize_center_crop(image: np.ndarray, size: tuple[int, int], shorter: int) -> np.ndarray:
    """Resize so the shorter side is ``shorter`` (bicubic), then crop ``size`` from the centre.

    Only the crop is computed: one warp from the source pixels that map onto it, as
    ``cv2.resize`` of the whole image would map them, so memory stays at ``size``
    however long the image (a 1x100000 image would otherwise scale to 256x25600000).
    """
    height, width = image.shape[:2]
    scale = shorter / min(height, width)
    new_w, new_h = max(round(width * scale), size[0]), max(round(height * scale), size[1])
    left, top = (new_w - size[0]) // 2, (new_h - size[1]) // 2
    step_x, step_y = width / new_w, height / new_h  # source pixels per resized pixel, as cv2.resize maps centres
    to_source = np.array([[step_x, 0.0, (left + 0.5) * step_x - 0.5], [0.0, step_y, (top + 0.5) * step_y - 0.5]])
    return cv2.warpAffine(
        image, to_source, size, flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE
    )


def letterbox(image: np.ndarray, size: tuple[int, int], pad_value: int = 127) -> tuple[np.ndarray, Letterbox]:
    """Fit ``image`` inside ``size`` keeping its aspect (bilinear), centred on grey ``pad_value``."""
    height, width = image.shape[:2]
    scale = min(size[0] / width, size[1] / height)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    canvas = np.full((size[1], size[0], 3), pad_value, np.uint8)
    pad_x, pad_y = (size[0] - new_w) // 2, (size[1] - new_h) // 2
    canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = cv2.resize(
        image, (new_w, new_h), interpolation=cv2.INTER_LINEAR
    )
    return canvas, Letterbox(scale, pad_x, pad_y)


def fit(image: np.ndarray, size: tuple[int, int], resize: str, shorter: int) -> np.ndarray:
    """Bring ``image`` to ``size`` by ``resize``: ``crop``, ``letterbox`` or ``stretch`` (bicubic)."""
    if resize == "crop":
        return resize_center_crop(image, size, shorter)
    if resize == "letterbox":
        return letterbox(image, size)[0]
    return cv2.resize(image, size, interpolation=cv2.INTER_CUBIC)


def to_tensor(
    images: list[np.ndarray],
    *,
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
    layout: str = "nchw",
    bgr: bool = False,
    dtype: np.dtype[np.generic] | type = np.float32,
) -> np.ndarray:
    """Stack equally sized RGB images into one normalised batch ``(x - mean) / std``.

    ``bgr`` reverses the channel order first; ``layout`` is ``nchw`` or ``nhwc``.
    A ``uint8`` ``dtype`` feeds raw pixels and ignores ``mean``/``std``.
    """
    batch = np.stack(images)
    if bgr:
        batch = batch[..., ::-1]
    if layout == "nchw":
        batch = batch.transpose(0, 3, 1, 2)
    batch = np.ascontiguousarray(batch)  # the layout change is cheapest on uint8
    if np.dtype(dtype) == np.uint8:
        return batch
    out = batch.astype(np.float32)
    for channel in range(3):  # scalar arithmetic per channel plane: far faster than broadcasting over 3
        plane = out[:, channel] if layout == "nchw" else out[..., channel]
        plane -= np.float32(mean[channel])
        plane *= np.float32(1.0 / std[channel])
    return out
