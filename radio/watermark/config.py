"""`WatermarkConfig`: the one type for a watermark's public parameters, used by generation, detection, CLI and sweeps.

The key and the vocabulary are not part of it: a keyed `Watermark` is built from a config plus a key and the
model's `vocab_size` (`Watermark(config, key=..., vocab_size=...)`). The sampler (temperature, top-p) is not part of
it either: plain and watermarked generation share it, so it lives with the generation settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from radio.config import from_dict, require, to_dict
from radio.watermark.hashing import HASHERS
from radio.watermark.schemes import SCHEMES


@dataclass(frozen=True)
class WatermarkConfig:
    """Public watermark parameters (never the key): scheme, window size k, green fraction, bias, hashing.

    `scheme` and `hashing` name entries of the scheme and hasher registries; every error names the field.
    """

    scheme: str = "kgw"
    k: int = 2
    gamma: float = 0.25
    delta: float = 3.0
    hashing: str = "radio"

    def __post_init__(self) -> None:
        SCHEMES.get(self.scheme)  # errors name the field and the known names
        HASHERS.get(self.hashing)
        require(
            isinstance(self.k, int) and not isinstance(self.k, bool) and self.k >= 0,
            "k",
            f"window size must be an integer >= 0, got {self.k!r}",
        )
        require(0.0 < self.gamma < 1.0, "gamma", f"must be in (0, 1), got {self.gamma}")
        require(self.delta >= 0.0, "delta", f"must be >= 0, got {self.delta}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WatermarkConfig:
        """Build from a plain mapping (YAML, a manifest); unknown keys or wrong types raise ConfigError."""
        return from_dict(cls, dict(data))

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON view (for stage hashes, manifests and run parameters)."""
        return to_dict(self)
