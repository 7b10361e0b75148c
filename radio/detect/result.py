"""`RadioactivityResult`: the outcome of one open- or closed-model test, with its setting and power numbers."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

from radio.detect.text import DetectionResult

CONTROLS = ("none", "wrong-key", "base-model")


@dataclass(frozen=True)
class RadioactivityResult:
    """H0: model B was not trained on text watermarked with this key (its scored tokens are i.i.d. null draws).

    `detection` holds the statistic, the exact p-value (`log10_pvalue` stays finite far below 1e-308) and the three
    counts (tokens seen, eligible after in-sequence or prompt exclusion and phi, scored after the tape). The rest
    is the setting (open/closed, supervised or not, phi, dedup, control) and what tells the power of the test:
    mean score, tokens/s, `curve`, log10 p against tokens scored (prefixes of the test, in scoring order), and
    `curve_band`, its 10-90% band over bootstrap resamples of the scored tokens.
    """

    detection: DetectionResult
    setting: str
    supervised: bool
    control: str = "none"
    in_sequence_exclusion: bool | None = None
    phi: dict[str, object] | None = None
    tokens_per_s: float = float("nan")
    wall_s: float = float("nan")
    curve: list[tuple[int, float]] = field(default_factory=list)
    curve_band: list[tuple[int, float, float]] = field(default_factory=list)
    info: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Settings are registered by name (radio.detect.settings); the result only records which one ran.
        if not isinstance(self.setting, str) or not self.setting:
            raise ValueError(f"setting: must be a registered setting's name, got {self.setting!r}")
        if self.control not in CONTROLS:
            raise ValueError(f"control: must be one of {CONTROLS}, got {self.control!r}")

    @property
    def pvalue(self) -> float:
        """The p-value (0.0 once it underflows; use `log10_pvalue`)."""
        return self.detection.pvalue

    @property
    def log10_pvalue(self) -> float:
        """log10 of the exact p-value, computed in log space."""
        return self.detection.log10_pvalue

    @property
    def n_scored(self) -> int:
        """Tokens scored (after the tape)."""
        return self.detection.n_scored

    @property
    def score_mean(self) -> float:
        """Mean score per scored token (green fraction for KGW)."""
        return self.detection.score_mean

    def to_dict(self) -> dict[str, object]:
        """Flat JSON-able record: the detection fields, then the setting and power numbers (never the key)."""
        out = self.detection.to_dict()
        out.update(
            {
                "setting": self.setting,
                "supervised": self.supervised,
                "supervision": "supervised" if self.supervised else "unsupervised",
                "control": self.control,
                "in_sequence_exclusion": self.in_sequence_exclusion,
                "phi": self.phi,
                "tokens_per_s": _finite(self.tokens_per_s),
                "wall_s": _finite(self.wall_s),
                "curve": [[int(n), float(p)] for n, p in self.curve],
                "curve_band": [[int(n), float(lo), float(hi)] for n, lo, hi in self.curve_band],
                **self.info,
            }
        )
        return out


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def derive_key(key: int | bytes | str, index: int) -> bytes:
    """The `index`-th wrong key derived from `key` (keyed BLAKE2b): reproducible, and unrelated to `key`'s lists."""
    material = str(key).encode() if isinstance(key, int) else key.encode() if isinstance(key, str) else key
    digest = hashlib.blake2b(f"radio/wrong-key/{index}/".encode() + material, digest_size=32)
    return digest.hexdigest().encode()
