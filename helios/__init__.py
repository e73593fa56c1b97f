"""Helios Studio's engine: streaming, timeline-steered Helios video generation on diffusers' components."""

from .control import GenerationControl, StepProgress
from .errors import BadInput, Cancelled, HeliosError, ModelUnavailable
from .loading import DEFAULT_MODEL, HeliosModel, LoadOptions, load_model
from .request import GenerationRequest, GenerationSettings
from .segment import Segment, SegmentTimings
from .timeline import PromptTimeline, TimelineEntry

__all__ = [
    "BadInput", "Cancelled", "DEFAULT_MODEL", "GenerationControl", "GenerationRequest", "GenerationSettings",
    "HeliosError", "HeliosModel", "LoadOptions", "ModelUnavailable", "PromptTimeline", "Segment", "SegmentTimings",
    "StepProgress", "TimelineEntry", "load_model",
]
