"""streamer: a real-time video stream classifier on ONNX Runtime.

The public API::

    from streamer import Classifier, ClassifierOptions, RunningMode

    with Classifier.create_from_options(ClassifierOptions(max_results=3)) as classifier:
        result = classifier.classify(rgb_image)      # FrameResult
        print(result.to_dict())
"""

from __future__ import annotations

from streamer.config import Config, load_config
from streamer.errors import (
    ConfigError,
    DeviceUnavailableError,
    ImageError,
    InputNotFoundError,
    ModelError,
    RunningModeError,
    StreamerError,
    WeightsIntegrityError,
)
from streamer.models.spec import ClassifierModel
from streamer.results import Category, Detection, FrameResult
from streamer.sources.images import read_image
from streamer.tasks import Classifier, ClassifierOptions, RunningMode
from streamer.vision.preprocess import RegionOfInterest

__all__ = [
    "Category",
    "Classifier",
    "ClassifierModel",
    "ClassifierOptions",
    "Config",
    "ConfigError",
    "Detection",
    "DeviceUnavailableError",
    "FrameResult",
    "ImageError",
    "InputNotFoundError",
    "ModelError",
    "RegionOfInterest",
    "RunningMode",
    "RunningModeError",
    "StreamerError",
    "WeightsIntegrityError",
    "load_config",
    "read_image",
]

__version__ = "0.1.0"
