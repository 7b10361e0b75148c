"""radio: was this language model trained on text that our watermarked model wrote? Answered with a p-value.

Public API: `Watermark` (schemes, keyed hashing, generation), `detect_tokens` (text detection with tape,
prompt exclusion and filter phi), and the exact statistics in `radio.stats`.
"""

from radio.detect.text import DetectionResult, detect_tokens
from radio.watermark import Watermark, WatermarkConfig

__all__ = ["DetectionResult", "Watermark", "WatermarkConfig", "detect_tokens"]
__version__ = "0.1.0"
