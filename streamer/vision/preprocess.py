"""Image preprocessing: pure functions from RGB ``uint8`` arrays to model tensors.

Images are ``[height, width, 3]`` ``uint8`` RGB. Sizes are ``(width, height)``
as in OpenCV. Nothing here reads files or touches a model.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np

from streamer.errors import ConfigError, ImageError

__all__ = [
    "Letterbox",
    "RegionOfInterest",
    "check_image",
    "crop_bounds",
    "crop_box",
    "fit",
    "letterbox",
    "resample",
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


def crop_bounds(
    shape: tuple[int, ...], box: np.ndarray | tuple[float, ...], margin: float, min_size: int = 2
) -> tuple[int, int, int, int] | None:
    """The whole pixels (left, top, right, bottom) of :func:`crop_box` in an image of ``shape``."""
    height, width = shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    dx, dy = (x2 - x1) * margin, (y2 - y1) * margin
    left, top = max(0, int(np.floor(x1 - dx))), max(0, int(np.floor(y1 - dy)))
    right, bottom = min(width, int(np.ceil(x2 + dx))), min(height, int(np.ceil(y2 + dy)))
    if right - left < min_size or bottom - top < min_size:
        return None
    return left, top, right, bottom


def crop_box(
    image: np.ndarray, box: np.ndarray | tuple[float, ...], margin: float, min_size: int = 2
) -> np.ndarray | None:
    """The part of ``image`` inside ``box`` (x1, y1, x2, y2 pixels) widened by ``margin`` x its size on
    every side and clipped to the image; ``None`` if the result is under ``min_size`` pixels either way."""
    bounds = crop_bounds(image.shape, box, margin, min_size)
    if bounds is None:
        return None
    left, top, right, bottom = bounds
    return image[top:bottom, left:right]


#: A downscale halves the image (cheap whole-pixel averages) while at least this much downscaling remains for
#: the filter after them: from 2 up, the embedded classifier's confidences stay within ~0.02 of Pillow's (as
#: close as an exact float implementation of Pillow's filter gets); at 1.5 they drift to 0.03.
MIN_REMAINING_SCALE = 2.0


def _bicubic_response(w: np.ndarray) -> np.ndarray:
    """Fourier transform of Pillow's bicubic kernel (Keys, a = -1/2) at angular frequencies ``w`` (rad/pixel)."""
    safe = np.maximum(w, 0.05)
    exact = 2 * (2 * safe * (np.cos(safe) - 1) * np.sin(safe) - 12 * np.cos(safe) + 3 * np.cos(2 * safe) + 9) / safe**4
    return np.where(w < 0.05, 1 - w**4 / 80, exact)


def _opencv_cubic_response(w: np.ndarray) -> np.ndarray:
    """Fourier transform of OpenCV's ``INTER_CUBIC`` kernel (Keys, a = -3/4)."""
    safe = np.maximum(w, 0.05)
    exact = 3 * (safe * np.sin(2 * safe) - 8 * np.cos(safe) + 3 * np.cos(2 * safe) + 5) / safe**4
    return np.where(w < 0.05, 1 + w**2 / 30 - 11 * w**4 / 560, exact)


def _linear_response(w: np.ndarray) -> np.ndarray:
    """Fourier transform of ``INTER_LINEAR``'s tent."""
    return np.sinc(w / (2 * np.pi)) ** 2


#: Pillow's bicubic kernel (Keys, a = -1/2) from two OpenCV warps: 5/7 of the cubic one (a = -3/4) and 2/7 of
#: the linear one. Both interpolate, and the mix has Pillow's second moment (zero) and its negative lobes (within
#: 0.005 past one pixel). On 300x200 photos it halves the cubic warp's error against Pillow (0.31 levels mean,
#: not 0.62) and keeps the classifier's confidences within 0.02 of Pillow's, where the cubic alone (what
#: streamer did) moved them by up to 0.12.
_BICUBIC_MIX = 5 / 7
#: how much larger than the crop a resized image may be for :func:`resize_center_crop` to resize it whole
WHOLE_AREA = 4

_RESPONSES = {
    "bicubic": lambda w: _BICUBIC_MIX * _opencv_cubic_response(w) + (1 - _BICUBIC_MIX) * _linear_response(w),
    "cubic": _opencv_cubic_response,
    "linear": _linear_response,
}


def _halvings(scale: float) -> int:
    """How many times a downscale by ``scale`` halves the image first (see :data:`MIN_REMAINING_SCALE`)."""
    count = 0
    while scale / 2 ** (count + 1) >= MIN_REMAINING_SCALE:
        count += 1
    return count


@functools.lru_cache(maxsize=256)
def _taps(scale: float, steps: tuple[str, ...], warp: str) -> np.ndarray:
    """The filter, one axis, that makes the halvings ``steps`` (``area`` or ``pyramid``), itself and the ``warp``
    together respond like Pillow's antialiased bicubic filter at ``scale`` (source pixels per output pixel).

    Pillow stretches its kernel by the downscale, so its support is 2 x ``scale`` source pixels; here the
    stretched kernel is a fixed filter on the reduced image followed by a plain interpolating warp. The taps
    (symmetric, at the reduced image's spacing) are a least-squares fit of the response over the source's
    frequencies, weighted like a photograph's spectrum (1/f), exact at DC: they also undo the blur of the
    halvings and of the warp's interpolation. Memoised (a stream's frames share their scale), so read-only.
    """
    spacing = 2 ** len(steps)
    support = max(scale, 1.0)
    nu = np.linspace(0.5 / 96, 0.5, 96)  # cycles per source pixel
    w = 2 * np.pi * nu
    have = _RESPONSES[warp](spacing * w)
    step_spacing = 1
    for step in steps:
        have = have * (np.cos(w * step_spacing / 2) if step == "area" else ((1 + np.cos(w * step_spacing)) / 2) ** 2)
        step_spacing *= 2
    offsets = np.arange(1, math.ceil(2 * support / spacing) + 1)
    basis = 2 * (np.cos(np.outer(w, offsets) * spacing) - 1) * have[:, None]  # tap pair k: 2 cos(k w), DC kept at 1
    weight = np.sqrt(1 / np.maximum(nu, 0.01))
    side = np.linalg.lstsq(basis * weight[:, None], (_bicubic_response(support * w) - have) * weight, rcond=None)[0]
    taps = np.concatenate([side[::-1], [1 - 2 * side.sum()], side]).astype(np.float32)
    taps.flags.writeable = False
    return taps


def _rounded(scale: float) -> float:
    """``scale`` to 4 significant digits: a 0.05% wider kernel changes nothing, and the taps are shared more."""
    return float(f"{scale:.4g}")


def _halve(image: np.ndarray, along_x: bool, along_y: bool) -> np.ndarray:
    """``image`` with each pair (or 2x2 block) of pixels averaged, an odd last one dropped."""
    width, height = image.shape[1] // (2 if along_x else 1), image.shape[0] // (2 if along_y else 1)
    whole = image[: height * (2 if along_y else 1), : width * (2 if along_x else 1)]
    return cv2.resize(whole, (width, height), interpolation=cv2.INTER_AREA)


@dataclass(frozen=True)
class _Plan:
    """How :func:`resample` brings one box to one size: the halvings per axis, then the warp."""

    halvings: tuple[int, int]  # per axis (x, y); the first ``shared`` of them on both axes at once
    shared: int  # 2-D halvings, the last a pyramid step; an axis with more halves alone first
    warp: str  # bicubic (the mix), cubic or linear

    @staticmethod
    def of(scales: tuple[float, float]) -> _Plan:
        halvings = (_halvings(scales[0]), _halvings(scales[1]))
        shared = min(halvings)
        remaining = min(scales[0] / 2 ** halvings[0], scales[1] / 2 ** halvings[1])
        if remaining < 1:
            warp = "bicubic"
        elif remaining < 1.8 or (shared and remaining < 2.5):  # where linear's error (pixels) doubles, measured
            warp = "cubic"
        else:
            warp = "linear"
        return _Plan(halvings, shared, warp)

    def steps(self, axis: int) -> tuple[str, ...]:
        """The halvings of ``axis`` in order: pixel pairs averaged, the last shared one a pyramid step."""
        count = self.halvings[axis]
        return ("area",) * (count - 1) + ("pyramid",) if self.shared else ("area",) * count


def _reduce(
    region: np.ndarray, plan: _Plan, origin: tuple[float, float]
) -> tuple[np.ndarray, tuple[float, float], tuple[float, float], float]:
    """``region`` halved as ``plan`` says, with where its pixel n now lies (``origin + n * spacing`` in the
    region's source pixel coordinates) and the mean rounding bias the halvings added."""
    (x0, y0), (dx, dy), bias = origin, (1.0, 1.0), 0.0
    for _ in range(plan.halvings[0] - plan.shared):
        region, x0, dx = _halve(region, True, False), x0 + dx / 2, dx * 2
    for _ in range(plan.halvings[1] - plan.shared):
        region, y0, dy = _halve(region, False, True), y0 + dy / 2, dy * 2
    for _ in range(plan.shared - 1):
        region, x0, y0, dx, dy = _halve(region, True, True), x0 + dx / 2, y0 + dy / 2, dx * 2, dy * 2
        bias += 0.125  # INTER_AREA rounds a 2x2 sum's quarters .5 up: +1/8 on average
    if plan.shared:
        region, dx, dy = cv2.pyrDown(region), dx * 2, dy * 2  # its pixel n from input 2n: the origin stays
    return region, (x0, y0), (dx, dy), bias


def _filter(scales: tuple[float, float], plan: _Plan) -> tuple[np.ndarray, np.ndarray]:
    """The taps per axis (x, y) that shape what ``plan``'s halvings leave like Pillow's kernel at ``scales``."""
    if max(scales) <= 1:  # upscaling: the warp alone is Pillow's filter
        return np.ones(1, np.float32), np.ones(1, np.float32)
    if plan.steps(0) == plan.steps(1) and abs(scales[0] - scales[1]) <= 0.01 * scales[0]:  # a crop's rounding
        same = _taps(_rounded((scales[0] + scales[1]) / 2), plan.steps(0), plan.warp)
        return same, same
    return _taps(_rounded(scales[0]), plan.steps(0), plan.warp), _taps(_rounded(scales[1]), plan.steps(1), plan.warp)


def _resized_whole(image: np.ndarray, size: tuple[int, int]) -> np.ndarray | None:
    """``image`` resized whole to ``size`` as :func:`resample` does, where no halving is needed (``None``
    otherwise): the same filter, then ``cv2.resize`` instead of a warp (its mapping is Pillow's for a whole
    image, and it computes each output column's weights once: ~5x cheaper than ``warpAffine`` here)."""
    height, width = image.shape[:2]
    plan = _Plan.of((width / size[0], height / size[1]))
    if plan.halvings != (0, 0):
        return None
    taps = _filter((width / size[0], height / size[1]), plan)
    if len(taps[0]) > 1 or len(taps[1]) > 1:
        image = cv2.sepFilter2D(image, -1, taps[0], taps[1], borderType=cv2.BORDER_REPLICATE)
    if plan.warp == "linear":
        return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    if plan.warp == "cubic":
        return cv2.resize(image, size, interpolation=cv2.INTER_CUBIC)
    pixels = image.astype(np.float32)  # upscaling: both in float, the mix rounded once
    cubic = cv2.resize(pixels, size, interpolation=cv2.INTER_CUBIC)
    linear = cv2.resize(pixels, size, interpolation=cv2.INTER_LINEAR)
    return cv2.addWeighted(cubic, _BICUBIC_MIX, linear, 1 - _BICUBIC_MIX, 0.0, dtype=cv2.CV_8U)


def resample(image: np.ndarray, box: tuple[float, float, float, float], size: tuple[int, int]) -> np.ndarray:
    """The rectangle ``box`` of ``image`` (x0, y0, x1, y1 in pixels, fractional; pixel n covers n..n+1)
    resampled to ``size`` as Pillow's antialiased bicubic filter does, on OpenCV, at a fraction of its cost.

    Classifiers are trained on Pillow's filter (torchvision, timm), whose kernel widens with the downscale
    so every source pixel counts; a plain cubic warp reads 4x4 pixels per output and aliases (on a 1080x810
    photo the embedded classifier's top-1 confidence fell from 0.62 to 0.23). Here, per axis:

    1. a downscale by 4 or more first halves the image, pixel pairs averaged (``INTER_AREA``, one memory
       pass), the last time by OpenCV's pyramid step (its 5-tap kernel aliases far less than pairs), until
       2 to 4 times the output size remains (:data:`MIN_REMAINING_SCALE`);
    2. a short filter (:func:`_taps`) shapes what remains like Pillow's stretched kernel;
    3. one warp samples the output from it: linear, or cubic where little downscaling is left (the
       interpolation then shows), or for upscaling a mix of the two close to Pillow's bicubic kernel.

    Only the pixels the output needs are read, and no copy is larger than they are (after a halving, a
    quarter of them). Against Pillow the embedded classifier's confidences stay within 0.02 from 300x200
    to 4000x3000, as close as an exact float implementation of Pillow's filter gets (Pillow rounds between
    its two passes).
    Cost over the plain cubic warp, to a 224 crop on 2 cores (bench_classify): none measurable at 640x480,
    +0.6 ms at 600x400, +2 to 3 ms at 1920x1080, +5 to 7 ms at 4000x3000 (Pillow's filter: +2.2, +11, +18).
    """
    height, width = image.shape[:2]
    scales = ((box[2] - box[0]) / size[0], (box[3] - box[1]) / size[1])
    plan = _Plan.of(scales)
    taps = _filter(scales, plan)
    starts = (box[0] + scales[0] / 2 - 0.5, box[1] + scales[1] / 2 - 0.5)  # output pixel 0's centre (pixel n at n)
    bounds = []
    for axis, length in ((0, width), (1, height)):
        reach = (len(taps[axis]) // 2 + 4) * 2 ** plan.halvings[axis]  # filter, warp and pyramid step
        low = min(max(0, math.floor(starts[axis] - reach)), length - 1)
        bounds.append((low, max(min(length, math.ceil(starts[axis] + size[axis] * scales[axis] + reach)), low + 1)))
    (left, right), (top, bottom) = bounds
    region, origin, spacing, bias = _reduce(image[top:bottom, left:right], plan, (float(left), float(top)))
    if len(taps[0]) > 1 or len(taps[1]) > 1 or bias:
        region = cv2.sepFilter2D(region, -1, taps[0], taps[1], delta=-bias, borderType=cv2.BORDER_REPLICATE)
    if plan.warp == "bicubic":  # upscaling, a small region: both warps in float, the mix rounded once
        region = region.astype(np.float32)
    to_region = np.array(
        [
            [scales[0] / spacing[0], 0.0, (starts[0] - origin[0]) / spacing[0]],
            [0.0, scales[1] / spacing[1], (starts[1] - origin[1]) / spacing[1]],
        ]
    )

    def warp(interpolation: int) -> np.ndarray:
        flags = interpolation | cv2.WARP_INVERSE_MAP
        return cv2.warpAffine(region, to_region, size, flags=flags, borderMode=cv2.BORDER_REPLICATE)

    if plan.warp == "linear":
        return warp(cv2.INTER_LINEAR)
    if plan.warp == "cubic":
        return warp(cv2.INTER_CUBIC)
    cubic, linear = warp(cv2.INTER_CUBIC), warp(cv2.INTER_LINEAR)
    return cv2.addWeighted(cubic, _BICUBIC_MIX, linear, 1 - _BICUBIC_MIX, 0.0, dtype=cv2.CV_8U)  # rounded once


def resize_center_crop(image: np.ndarray, size: tuple[int, int], shorter: int) -> np.ndarray:
    """Resize so the shorter side is ``shorter`` (antialiased bicubic, as Pillow), then crop ``size`` from the centre.

    Where the resized image is at most :data:`WHOLE_AREA` times the crop's area (an object's box, a photo),
    it is resized whole and cropped (:func:`_resized_whole`, the same filter); else only the crop is
    computed, :func:`resample` of the source rectangle that maps onto it, so memory stays near ``size``
    however long the image (a 1x100000 image would otherwise scale to 256x25600000).
    """
    height, width = image.shape[:2]
    scale = shorter / min(height, width)
    new_w, new_h = max(round(width * scale), size[0]), max(round(height * scale), size[1])
    left, top = (new_w - size[0]) // 2, (new_h - size[1]) // 2
    if new_w * new_h <= WHOLE_AREA * size[0] * size[1]:
        whole = _resized_whole(image, (new_w, new_h))
        if whole is not None:
            return np.ascontiguousarray(whole[top : top + size[1], left : left + size[0]])
    step_x, step_y = width / new_w, height / new_h  # source pixels per resized pixel
    box = (left * step_x, top * step_y, (left + size[0]) * step_x, (top + size[1]) * step_y)
    return resample(image, box, size)


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
    """Bring ``image`` to ``size`` by ``resize``: ``crop``, ``letterbox`` or ``stretch`` (antialiased bicubic)."""
    if resize == "crop":
        return resize_center_crop(image, size, shorter)
    if resize == "letterbox":
        return letterbox(image, size)[0]
    return resample(image, (0.0, 0.0, float(image.shape[1]), float(image.shape[0])), size)


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
