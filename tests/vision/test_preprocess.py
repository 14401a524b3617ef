"""Preprocessing on hand-made arrays."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from PIL import Image
from skimage import data

from streamer.errors import ConfigError, ImageError
from streamer.vision.preprocess import (
    RegionOfInterest,
    check_image,
    crop_box,
    fit,
    letterbox,
    resample,
    resize_center_crop,
    roi_pixels,
    to_tensor,
    upright,
)


def test_resize_center_crop_keeps_the_centre() -> None:
    image = np.zeros((300, 600, 3), np.uint8)
    image[:, 250:350] = 255  # a white band in the middle
    out = resize_center_crop(image, (224, 224), 256)
    assert out.shape == (224, 224, 3)
    # 600 -> 512 wide, band at 213..299, crop starts at 144: band at 69..155 in the crop
    assert out[112, 112].tolist() == [255, 255, 255]
    assert out[112, 10].tolist() == [0, 0, 0]


def _resize_whole_then_crop(image: np.ndarray, size: tuple[int, int], shorter: int) -> np.ndarray:
    """What resize_center_crop computes, the expensive way: the whole image resized by Pillow (bicubic,
    antialiased: what classifiers are trained on), then cropped."""
    height, width = image.shape[:2]
    scale = shorter / min(height, width)
    new_w, new_h = max(round(width * scale), size[0]), max(round(height * scale), size[1])
    resized = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.Resampling.BICUBIC))
    top, left = (new_h - size[1]) // 2, (new_w - size[0]) // 2
    return resized[top : top + size[1], left : left + size[0]]


@pytest.mark.parametrize("shape", [(300, 451), (480, 640), (1080, 1920), (50, 70), (400, 3000), (3000, 400)])
@pytest.mark.parametrize(("size", "shorter"), [((224, 224), 256), ((224, 224), 224), ((300, 200), 320)])
def test_resize_center_crop_matches_pillow_resizing_the_whole_image(
    shape: tuple[int, int], size: tuple[int, int], shorter: int
) -> None:
    """Upscaled up to 5x, downscaled up to 5x, cropped across either side: Pillow's crop but for rounding."""
    image = np.asarray(Image.fromarray(data.astronaut()).resize(shape[::-1], Image.Resampling.LANCZOS))
    out = resize_center_crop(image, size, shorter)
    assert out.shape == (size[1], size[0], 3) and out.dtype == np.uint8
    difference = np.abs(out.astype(int) - _resize_whole_then_crop(image, size, shorter))
    assert difference.mean() <= 1.0 and np.percentile(difference, 99) <= 6, (difference.mean(), difference.max())


@pytest.mark.parametrize(
    ("shape", "period"), [((480, 640), 2), ((720, 1280), 2), ((1080, 1920), 3), ((3000, 4000), 5), ((4000, 3000), 4)]
)
def test_detail_finer_than_the_output_pixels_averages_out(shape: tuple[int, int], period: int) -> None:
    """Stripes a few source pixels wide, far finer than a pixel of the crop: Pillow's filter gives their
    mean, flat (standard deviation under 0.5); a plain cubic warp aliases them into stripes (std 60 to 106)."""
    row = np.where(np.arange(shape[1]) % period < period / 2, 255, 0).astype(np.uint8)
    image = np.ascontiguousarray(np.broadcast_to(row[None, :, None], (*shape, 3)))
    out = resize_center_crop(image, (224, 224), 256).astype(float)
    assert abs(out.mean() - row.mean()) <= 2 and out.std() <= 2.5, (out.mean(), row.mean(), out.std())
    checker = np.ascontiguousarray(np.broadcast_to((np.indices(shape).sum(axis=0) % 2 * 255)[..., None], (*shape, 3)))
    out = fit(checker.astype(np.uint8), (224, 224), "stretch", 256).astype(float)
    assert abs(out.mean() - 127.5) <= 2 and out.std() <= 2.5, (out.mean(), out.std())


@pytest.mark.parametrize(
    ("box", "size"),
    [
        ((100.5, 30.25, 1060.5, 510.25), (160, 80)),  # 6x smaller, fractional edges
        ((100.2, 30.0, 1060.2, 510.0), (160, 80)),
        ((7.3, 3.9, 1199.0, 597.7), (160, 80)),  # 7.45x and 7.42x
        ((400.7, 200.1, 520.3, 260.9), (224, 224)),  # 2x and 4x larger
        ((0.0, 0.0, 1200.0, 600.0), (300, 20)),  # 4x and 30x: the long axis halves alone first
    ],
)
def test_resample_maps_a_box_as_pillow_does(box: tuple[float, float, float, float], size: tuple[int, int]) -> None:
    """On a ramp (no detail to disagree on) any misplaced pixel would show: equal to Pillow but for rounding."""
    ys, xs = np.indices((600, 1200))
    image = np.repeat(((xs + 2 * ys) / 10).astype(np.uint8)[..., None], 3, axis=2)
    out = resample(image, box, size).astype(int)
    expected = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BICUBIC, box=box)).astype(int)
    assert out.shape == expected.shape and np.abs(out - expected).max() <= 1
    assert np.abs(out - expected).mean() <= 0.35, np.abs(out - expected).mean()


@pytest.mark.parametrize("shape", [(1, 100_000), (100_000, 1), (3, 70_000)])
def test_resize_center_crop_of_a_thin_image_stays_small(shape: tuple[int, int]) -> None:
    """Scaled whole, a 1x100000 image would be 256x25600000 (19 GB); only the crop is ever made."""
    along = np.indices(shape)[int(shape[1] > shape[0])]  # each pixel's place along the long side
    image = np.repeat((along * 256 // max(shape)).astype(np.uint8)[..., None], 3, axis=2)  # a ramp 0..255
    tracemalloc.start()
    try:
        out = resize_center_crop(image, (200, 150), 256)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert out.shape == (150, 200, 3)
    assert peak < 2_000_000, f"{peak} bytes"
    assert abs(int(out[75, 100, 0]) - 128) <= 1, "the centre of the image"


def test_letterbox_and_fit_of_a_thin_image_stay_small() -> None:
    image = np.zeros((100_000, 1, 3), np.uint8)
    tracemalloc.start()
    try:
        canvas, box = letterbox(image, (320, 320))
        stretched = fit(image, (224, 224), "stretch", 256)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert canvas.shape == (320, 320, 3) and box.scale == 320 / 100_000 and stretched.shape == (224, 224, 3)
    assert peak < 2_000_000, f"{peak} bytes"


def test_letterbox_offsets_and_grey_padding() -> None:
    image = np.full((360, 640, 3), 200, np.uint8)
    canvas, box = letterbox(image, (320, 320))
    assert canvas.shape == (320, 320, 3)
    assert (box.scale, box.pad_x, box.pad_y) == (0.5, 0, 70)
    assert canvas[0, 0].tolist() == [127, 127, 127] and canvas[319, 319].tolist() == [127, 127, 127]
    assert canvas[70, 0].tolist() == [200, 200, 200] and canvas[249, 319].tolist() == [200, 200, 200]


def test_fit_stretch_ignores_aspect() -> None:
    assert fit(np.zeros((10, 40, 3), np.uint8), (8, 8), "stretch", 8).shape == (8, 8, 3)


def test_to_tensor_layouts_and_normalisation() -> None:
    image = np.zeros((2, 3, 3), np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 10, 20, 30
    nchw = to_tensor([image, image], mean=(10, 10, 10), std=(2, 2, 2))
    assert nchw.shape == (2, 3, 2, 3) and nchw.dtype == np.float32 and nchw.flags.c_contiguous
    assert nchw[0, :, 0, 0].tolist() == [0.0, 5.0, 10.0]
    nhwc = to_tensor([image], mean=(0, 0, 0), std=(1, 1, 1), layout="nhwc", bgr=True)
    assert nhwc.shape == (1, 2, 3, 3) and nhwc[0, 0, 0].tolist() == [30.0, 20.0, 10.0]
    raw = to_tensor([image], mean=(5, 5, 5), std=(9, 9, 9), dtype=np.uint8)
    assert raw.dtype == np.uint8 and raw[0, :, 0, 0].tolist() == [10, 20, 30]


def test_roi_pixels_and_crop_box() -> None:
    shape = (10, 20, 3)
    assert roi_pixels(shape, RegionOfInterest(0.5, 0.0, 1.0, 0.5)) == (10, 0, 20, 5)
    assert roi_pixels(shape, RegionOfInterest(0.0, 0.0, 0.01, 0.01)) == (0, 0, 1, 1), "never empty"
    assert roi_pixels(shape, RegionOfInterest(0.99, 0.99, 1.0, 1.0)) == (19, 9, 20, 10)
    assert roi_pixels(shape, None) == (0, 0, 20, 10)
    image = np.arange(10 * 20 * 3, dtype=np.uint8).reshape(shape)
    crop = crop_box(image, (4.0, 2.0, 14.0, 6.0), 0.1)  # widened by 1 px and 0.4 px on each side
    assert crop is not None and crop.shape == (6, 12, 3) and crop[0, 0].tolist() == image[1, 3].tolist()
    whole = crop_box(image, (-5.0, -5.0, 30.0, 30.0), 0.5)
    assert whole is not None and whole.shape == shape, "clipped to the frame"
    assert crop_box(image, (5.0, 5.0, 5.9, 9.0), 0.0) is None, "under 2 px wide"
    assert crop_box(image, (19.5, 2.0, 25.0, 8.0), 0.0) is None, "outside after clipping"


@pytest.mark.parametrize("values", [(0.5, 0.0, 0.5, 1.0), (-0.1, 0.0, 1.0, 1.0), (0.0, 0.0, 1.0, 1.5)])
def test_bad_regions(values: tuple[float, float, float, float]) -> None:
    with pytest.raises(ConfigError, match="region_of_interest"):
        RegionOfInterest(*values)


def test_check_image_names_shape_and_dtype() -> None:
    with pytest.raises(ImageError, match=r"got shape \[4, 4, 1\] uint8"):
        check_image(np.zeros((4, 4, 1), np.uint8))
    with pytest.raises(ImageError, match="got list"):
        check_image([[1, 2, 3]])


def test_upright_turns_by_the_display_rotation() -> None:
    image = np.arange(6, dtype=np.uint8).reshape(2, 3, 1)  # [[0 1 2], [3 4 5]]
    assert upright(image, 0) is image
    assert upright(image, 90)[..., 0].tolist() == [[2, 5], [1, 4], [0, 3]], "90: counter-clockwise"
    assert upright(image, -90)[..., 0].tolist() == [[3, 0], [4, 1], [5, 2]], "-90: clockwise"
    assert upright(image, 180)[..., 0].tolist() == [[5, 4, 3], [2, 1, 0]]
    assert upright(image, 270).tolist() == upright(image, -90).tolist()
    assert upright(image, 90).flags.c_contiguous
