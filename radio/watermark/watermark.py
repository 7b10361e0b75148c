"""`Watermark`: a `WatermarkConfig` with its key, an explicit vocabulary domain and the sampler, as one object."""

from __future__ import annotations

import torch

from radio.config import require
from radio.keys import key_fingerprint
from radio.watermark.config import WatermarkConfig
from radio.watermark.hashing import HASHERS, Hasher
from radio.watermark.sampling import sampler_generate_kwargs
from radio.watermark.schemes import SCHEMES, Scheme


class Watermark:
    """A keyed watermark: generation through `logits_processor()`, detection through `score_pairs`.

    Token ids at or beyond `vocab_size` are outside the watermark's domain: never green, never chosen by the
    Aaronson rule, and not scored. Models whose logits are wider than the tokenizer are handled by that rule.
    """

    def __init__(
        self,
        config: WatermarkConfig,
        *,
        key: int | bytes | str,
        vocab_size: int,
        temperature: float = 0.8,
        top_p: float = 0.95,
    ) -> None:
        require(isinstance(config, WatermarkConfig), "config", f"expected a WatermarkConfig, got {config!r}")
        require(
            isinstance(vocab_size, int) and not isinstance(vocab_size, bool) and vocab_size > 0,
            "vocab_size",
            f"must be a positive integer, got {vocab_size!r}",
        )
        # The sampler acts after the watermark inside the logits processor (see radio.watermark.sampling).
        require(temperature > 0.0, "temperature", f"must be > 0, got {temperature}")
        require(0.0 < top_p <= 1.0, "top_p", f"must be in (0, 1], got {top_p}")
        if isinstance(key, bool) or not isinstance(key, int | bytes | str) or key in (b"", ""):
            raise ValueError("key: a non-empty int, bytes or str is required")
        self.config = config
        self.vocab_size = vocab_size
        self.temperature = float(temperature)
        self.top_p = float(top_p)
        self._key = key
        self.fingerprint = key_fingerprint(key if not isinstance(key, str) else key.encode())
        self.scheme: Scheme = SCHEMES.get(config.scheme)(config.gamma, config.delta)
        self.hasher: Hasher = HASHERS.get(config.hashing)(key, config.scheme)
        self.threshold = self.hasher.green_threshold(config.gamma, vocab_size)

    def with_key(self, key: int | bytes | str) -> Watermark:
        """The same watermark under another key (the wrong-key control)."""
        return Watermark(
            self.config, key=key, vocab_size=self.vocab_size, temperature=self.temperature, top_p=self.top_p
        )

    def public_dict(self) -> dict[str, object]:
        """JSON-able public parameters (config, vocabulary, sampler) plus the key fingerprint; never the key."""
        return {
            **self.config.to_dict(),
            "vocab_size": self.vocab_size,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "key_fingerprint": self.fingerprint,
        }

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.public_dict().items() if k != "key_fingerprint")
        return f"Watermark({params}, key=<fingerprint {self.fingerprint}>)"

    @property
    def k(self) -> int:
        """Window size: how many previous tokens seed the hash."""
        return self.config.k

    def vocab_uniforms(self, windows: torch.Tensor) -> torch.Tensor:
        """(batch, k) windows -> (batch, vocab_size) uniforms (green when below `threshold` for KGW)."""
        return self.hasher.vocab_uniforms(windows.to(torch.int64), self.vocab_size)

    def green_mask(self, windows: torch.Tensor) -> torch.Tensor:
        """(batch, k) windows -> (batch, vocab_size) boolean green lists (KGW's view; for Aaronson: r < gamma)."""
        return self.vocab_uniforms(windows) < self.threshold

    def score_pairs(self, windows: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """(n, k) windows and (n,) tokens (ids < vocab_size) -> (n,) float64 per-token scores."""
        uniforms = self.hasher.pair_uniforms(windows.to(torch.int64), tokens.to(torch.int64), self.vocab_size)
        return self.scheme.token_scores(uniforms, self.threshold)

    def statistic(self, scores: torch.Tensor) -> float:
        """The test statistic of per-token scores from `score_pairs` (their sum; 0.0 for none)."""
        return self.scheme.statistic(scores)

    def log_pvalue(self, statistic: float, n_scored: int, mid_p: bool = False) -> float:
        """Natural log of the exact H0 p-value of a score sum over `n_scored` deduplicated tokens."""
        if n_scored == 0:
            return 0.0
        return self.scheme.log_pvalue(statistic, n_scored, self.threshold, mid_p)

    def h0(self) -> dict[str, float | str]:
        """Null distribution parameters of one token score."""
        return self.scheme.h0(self.threshold)

    def logits_processor(self) -> WatermarkLogitsProcessor:
        """A `transformers` LogitsProcessor applying the watermark, temperature and top-p in `generate`."""
        return WatermarkLogitsProcessor(self)

    def generation_kwargs(self) -> dict[str, object]:
        """`model.generate(**inputs, **wm.generation_kwargs())`: watermarked sampling, generate's warpers off."""
        return sampler_generate_kwargs(self.logits_processor())


class WatermarkLogitsProcessor:
    """Batched watermarking inside `model.generate`: hashes the last k tokens of every row in one pass.

    Returns log-probabilities already shaped by the watermark, temperature and top-p; use it with
    `do_sample=True, temperature=1.0, top_p=1.0, top_k=0` (see `Watermark.generation_kwargs`). Rows with fewer than
    k tokens of context are not possible here (generate always has the prompt); pad tokens inside a window make
    that token unwatermarked, which detection, seeing the real text, treats as an ordinary unbiased token.
    """

    def __init__(self, watermark: Watermark) -> None:
        self.watermark = watermark

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        """Bias (KGW) or select (Aaronson) the next token of every row."""
        wm = self.watermark
        k = wm.k
        windows = input_ids[:, input_ids.shape[1] - k :] if k else input_ids[:, :0]
        out = wm.scheme.watermark_logits(
            scores, windows.to(torch.int64), wm.hasher, wm.vocab_size, wm.threshold, wm.temperature, wm.top_p
        )
        return out.to(scores.dtype)
