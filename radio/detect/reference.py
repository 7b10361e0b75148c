"""A reference model's probabilities at B's stored top-m tokens, position by position (for the `open-ref` test).

The reference-calibrated reading test (`radio.detect.open_model_dist` with `reference=`) scores how much more
probability B puts than a reference model R on each window's green list. R reads exactly the chunks B read (the
same packing, separator and sequence length), and at every position this module keeps R's probability of each of
B's m most likely tokens there: an (n, m) array beside the reading pass's `top_probs`.

R must not depend on the key: Alice's own model A (the watermark is applied when A samples, never learned by A's
weights) or Bob's base model. A model trained on text watermarked with this key would make the weights depend on
the green lists and void the test's H0.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch

from radio.detect.open_model import ReadingPass, autocast_context, body_and_head, model_device, pack_texts

log = logging.getLogger(__name__)


def _probs_at(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """softmax(logits) at `ids` (..., m), rounded as B's stored top-m probabilities are (fp16), so that R = B gives
    an excess of exactly 0."""
    if int(ids.max()) >= logits.shape[-1]:
        raise ValueError(f"reference: logits width {logits.shape[-1]} does not cover B's token ids")
    log_z = torch.logsumexp(logits.float(), dim=-1, keepdim=True)
    return (logits.gather(-1, ids).float() - log_z).exp().to(torch.float16)


def _fused_probs(
    body: torch.nn.Module, head: torch.nn.Module, batch: torch.Tensor, ids: torch.Tensor, chunk: int
) -> torch.Tensor:
    """`_probs_at` of head(body(batch)) on `chunk` positions at a time: the (batch, seq, vocab) logits never exist."""
    hidden = body(input_ids=batch, use_cache=False).last_hidden_state
    flat, wanted = hidden.reshape(-1, hidden.shape[-1]), ids.reshape(-1, ids.shape[-1])
    parts = [_probs_at(head(flat[i : i + chunk]), wanted[i : i + chunk]) for i in range(0, flat.shape[0], chunk)]
    return torch.cat(parts).reshape(ids.shape)


def reference_probs(
    model: torch.nn.Module,
    texts: Sequence[Sequence[int]],
    reading: ReadingPass,
    *,
    batch_size: int = 32,
    separator_id: int | None = None,
    pad_id: int = 0,
    amp: str | None = None,
) -> torch.Tensor:
    """R's probabilities (n, m) fp16 of B's top-m ids at each of `reading`'s positions, over the same `texts`.

    `texts`, `separator_id` and `pad_id` must be those B read (`read_texts`): the packing is checked against the
    reading pass (positions and chunks), and R's vocabulary must cover B's ids.
    """
    if reading.top_ids is None:
        raise ValueError("reading pass: read with top_m > 0 for a reference-calibrated test")
    if batch_size < 1:
        raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
    max_positions = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if isinstance(max_positions, int) and 0 < max_positions < reading.seq_len:
        raise ValueError(f"reference: reads at most {max_positions} positions, B's reading used {reading.seq_len}")
    chunks, _, n_real = pack_texts(texts, reading.seq_len, separator_id, pad_id)
    if n_real != reading.n_tokens or chunks.shape[0] != reading.n_chunks:
        raise ValueError(
            f"reference: the texts pack into {n_real} positions in {chunks.shape[0]} chunks, B's reading pass has "
            f"{reading.n_tokens} in {reading.n_chunks}: not the texts B read"
        )
    m = reading.top_m
    ids = torch.zeros(chunks.numel(), m, dtype=torch.int64)
    ids[:n_real] = reading.top_ids.to(torch.int64)
    ids = ids.view(chunks.shape[0], chunks.shape[1], m)
    device = model_device(model)
    parts = body_and_head(model)
    vocab = getattr(parts[1], "out_features", None) if parts else None
    chunk = max(1, (1 << 22) // vocab) if isinstance(vocab, int) and vocab > 0 else 1024
    out = []
    with torch.inference_mode(), autocast_context(device, amp):
        for first in range(0, chunks.shape[0], batch_size):
            batch = chunks[first : first + batch_size].to(device)
            wanted = ids[first : first + batch_size].to(device)
            if parts is not None:
                probs = _fused_probs(*parts, batch, wanted, chunk)
                if first == 0:  # two rows against the plain forward pass (a model may scale or cap its logits)
                    plain = _probs_at(model(input_ids=batch[:2], use_cache=False).logits, wanted[:2])
                    if not torch.allclose(plain.float(), probs[:2].float(), rtol=1e-2, atol=1e-4):
                        log.warning("reference: fused LM head disagrees with the forward pass; using the plain path")
                        parts = None
                        probs = _probs_at(model(input_ids=batch, use_cache=False).logits, wanted)
            else:
                probs = _probs_at(model(input_ids=batch, use_cache=False).logits, wanted)
            out.append(probs.cpu())
    return torch.cat(out).reshape(-1, m)[:n_real]
