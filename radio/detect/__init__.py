"""Detection: text detection with the tape, and (built on it) the radioactivity tests."""

from radio.detect.text import DetectionResult, TokenScores, detect_tokens, pvalue_curve, score_tokens

__all__ = ["DetectionResult", "TokenScores", "detect_tokens", "pvalue_curve", "score_tokens"]
