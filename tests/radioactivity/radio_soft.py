"""Models and texts for the distribution-based reading tests: real `nn.Module`s with known, key-independent behaviour.

- `BigramModel`: a clean model (it never saw watermarked text): logits = a fixed random table row of x_t, peaked.
- `ContextModel`: a clean model that copies its context: it puts mass on every token seen earlier in the context
  (a unigram cache) and more on the token that followed the last earlier occurrence of x_t (an induction head).
  On text watermarked with the tested key it sees green tokens in its context; only the in-sequence exclusion keeps
  that from looking radioactive.
- `LearnedKeyModel`: a model that has "learned" the watermark of another key: BigramModel logits + delta on the
  green list of that key for the window x_t (k = 1).
- `watermarked_text`: KGW or Aaronson text for any k from a key-independent base distribution (uniform or a bigram
  table), sampled for a batch of texts at once.
"""

from __future__ import annotations

import types

import numpy as np
import torch

from radio.watermark import Watermark


def _out(logits: torch.Tensor) -> types.SimpleNamespace:
    return types.SimpleNamespace(logits=logits)


class BigramModel(torch.nn.Module):
    """logits[t] = sharpness * table[x_t] (a fixed N(0, 1) table from `seed`): peaked, key-independent."""

    def __init__(self, vocab: int, seed: int = 0, sharpness: float = 3.0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.register_buffer("table", sharpness * torch.randn(vocab, vocab, generator=gen))

    def forward(self, input_ids: torch.Tensor, **_: object) -> types.SimpleNamespace:
        return _out(self.table[input_ids])


class ContextModel(torch.nn.Module):
    """Unigram cache over the context plus an induction head (k = 1): copies what it has seen, knows no key."""

    def __init__(self, vocab: int, cache: float = 2.0, induction: float = 4.0) -> None:
        super().__init__()
        self.vocab, self.cache, self.induction = vocab, cache, induction

    def forward(self, input_ids: torch.Tensor, **_: object) -> types.SimpleNamespace:
        length = input_ids.shape[1]
        one_hot = torch.nn.functional.one_hot(input_ids, self.vocab).to(torch.float32)  # (b, t, V)
        counts = one_hot.cumsum(dim=1)  # tokens seen up to and including t
        logits = self.cache * torch.log1p(counts)
        positions = torch.arange(length)
        same = input_ids[:, :, None] == input_ids[:, None, :]
        earlier = (positions[None, :] < positions[:, None]) & (positions[None, :] < length - 1)
        last = torch.where(same & earlier[None], positions[None, None, :], -1).max(dim=2).values
        copied = torch.gather(input_ids, 1, (last + 1).clamp(max=length - 1))
        boost = torch.nn.functional.one_hot(copied, self.vocab).to(torch.float32) * (last >= 0)[..., None]
        return _out(logits + self.induction * boost)


class LearnedKeyModel(torch.nn.Module):
    """BigramModel logits + delta on the green list of `wm` (another key) for the window x_t (k = 1)."""

    def __init__(self, wm: Watermark, seed: int = 0, delta: float = 2.0) -> None:
        super().__init__()
        assert wm.k == 1
        vocab = wm.vocab_size
        self.base = BigramModel(vocab, seed)
        green = wm.green_mask(torch.arange(vocab)[:, None]).to(torch.float32)
        self.register_buffer("bias", delta * green)

    def forward(self, input_ids: torch.Tensor, **_: object) -> types.SimpleNamespace:
        return _out(self.base(input_ids).logits + self.bias[input_ids])


def watermarked_text(
    wm: Watermark, n_texts: int, length: int, seed: int, base: torch.Tensor | None = None
) -> list[list[int]]:
    """`n_texts` texts of `length` tokens watermarked by `wm` (its k and scheme) over a key-independent base.

    `base`: (V, V) bigram logits of the previous token (None: uniform). KGW adds delta to the green logits and
    samples; Aaronson picks argmax r_v^(1/p_v), deterministic given the window (so it loops at small k).
    """
    vocab, k = wm.vocab_size, wm.k
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.empty((n_texts, length), dtype=torch.int64)
    tokens[:, :k] = torch.randint(0, vocab, (n_texts, k), generator=gen)
    if k == 1:
        return _bigram_text(wm, tokens[:, 0].numpy(), length, seed, base)
    for t in range(k, length):
        logits = torch.zeros(n_texts, vocab) if base is None else base[tokens[:, t - 1]]
        uniforms = wm.vocab_uniforms(tokens[:, t - k : t]).float()
        if wm.config.scheme == "kgw":
            probs = torch.softmax(logits + wm.config.delta * (uniforms < wm.threshold), dim=1)
            tokens[:, t] = torch.multinomial(probs, 1, generator=gen)[:, 0]
        else:
            p = torch.softmax(logits, dim=1)
            tokens[:, t] = (torch.log(uniforms.clamp_min(1e-30)) / p).argmax(dim=1)
    return tokens.tolist()


def _bigram_text(
    wm: Watermark, first: np.ndarray, length: int, seed: int, base: torch.Tensor | None
) -> list[list[int]]:
    """k = 1: the watermarked next-token rule of every window in one (V, V) table, then one lookup per step
    (Gumbel-max sampling for KGW, the deterministic argmax rule for Aaronson)."""
    vocab = wm.vocab_size
    uniforms = wm.vocab_uniforms(torch.arange(vocab)[:, None]).numpy()
    logits = np.zeros((vocab, vocab)) if base is None else base.double().numpy()
    log_p = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
    if wm.config.scheme == "kgw":
        rule = logits + wm.config.delta * (uniforms < wm.threshold)
        noise = np.random.default_rng(seed).gumbel(size=(first.size, length, vocab))
    else:
        rule = np.log(np.maximum(uniforms, 1e-300)) / np.exp(log_p)
        noise = np.zeros((first.size, length, 1))
    tokens = np.empty((first.size, length), dtype=np.int64)
    tokens[:, 0] = first
    for t in range(1, length):
        tokens[:, t] = np.argmax(rule[tokens[:, t - 1]] + noise[:, t], axis=1)
    return tokens.tolist()


def looped(texts: list[list[int]], period: int, repeats: int) -> list[list[int]]:
    """Each text's first `period` tokens repeated `repeats` times, then the rest: text that loops heavily."""
    return [t[:period] * repeats + t[period:] for t in texts]


def fpr(pvalues: list[float] | np.ndarray, alpha: float) -> float:
    """Share of p-values at or below `alpha`."""
    return float(np.mean(np.asarray(pvalues) <= alpha))
