"""Watermark schemes (KGW, Aaronson), keyed hashing, and the LogitsProcessor used for generation."""

from radio.watermark.config import WatermarkConfig
from radio.watermark.hashing import HASHERS, Hasher
from radio.watermark.sampling import SamplingProcessor, plain_generation_kwargs
from radio.watermark.schemes import SCHEMES, Scheme
from radio.watermark.watermark import Watermark, WatermarkLogitsProcessor

__all__ = [
    "HASHERS",
    "SCHEMES",
    "Hasher",
    "SamplingProcessor",
    "Scheme",
    "Watermark",
    "WatermarkConfig",
    "WatermarkLogitsProcessor",
    "plain_generation_kwargs",
]
