"""Open-model radioactivity test ("reading mode"): B reads Alice's watermarked text; its top-1 predictions are scored.

`read_texts` packs the texts' token ids into one stream (a separator, e.g. eos, between texts), cuts it into
(batch, seq_len) chunks and runs batched forward passes (`inference_mode`, bf16/fp16 autocast on GPU). At every
position t it keeps B's top-1 prediction y_{t+1} and the window x_{t-k+1..t} taken from the INPUT. That pass does
not depend on the key, so one `ReadingPass` serves the correct key, any number of wrong keys, phi or not.

`open_model_test` then marks the eligible positions, all vectorised:
- the window lies inside one text and every id in it is inside the watermark domain;
- the window was not seen earlier in the same chunk (B could copy the token that followed it in its context: the
  in-sequence exclusion; without it a model that merely copies in context looks radioactive);
- optionally, the window is in phi;
and hands them to `score_with_tape`, the shared scoring loop with the global tape (dedup across the whole test).
Predictions outside the watermark domain are never scored (the tape drops them).

`read_texts(..., top_m=m)` also keeps, from the same logits of the same forward pass, B's m most likely next tokens
and their probabilities at every position (fp16 probabilities, int16 ids when the logits width fits, else int32:
4 bytes per entry at V = 32,000, so m = 64 over 1e7 tokens is 2.6 GB), for the distribution-based tests of
`radio.detect.open_model_dist`. With `top_m=0` (the default) nothing but the argmax is computed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from radio.detect.phi import Phi
from radio.detect.result import RadioactivityResult
from radio.detect.tape import row_ids, rows_in
from radio.detect.text import pvalue_band, pvalue_curve, result_from_scores, score_with_tape
from radio.watermark import Watermark

log = logging.getLogger(__name__)

_DOC_SEPARATOR = -1
_DOC_PAD = -2


@dataclass(frozen=True)
class ReadingPass:
    """B's top-1 predictions over packed text and the input windows they are scored against (key-independent).

    One row per input token read, in stream order: `windows[i]` = x_{t-k+1..t}, `predictions[i]` = argmax of B's
    logits at t. `has_window`: the window lies inside one text; `fresh_in_sequence`: it was not seen earlier in the
    same chunk (B's context). `top_probs` / `top_ids` (None unless read with `top_m > 0`): (n, m) B's m most likely
    next tokens at t and their probabilities under its full softmax (most likely first), from the same logits as the
    argmax.
    """

    k: int
    windows: torch.Tensor
    predictions: torch.Tensor
    has_window: torch.Tensor
    fresh_in_sequence: torch.Tensor
    n_texts: int
    n_chunks: int
    seq_len: int
    forward_s: float
    wall_s: float
    device: str
    top_probs: torch.Tensor | None = None
    top_ids: torch.Tensor | None = None

    @property
    def top_m(self) -> int:
        """How many of B's most likely tokens per position the pass kept (0: only the argmax)."""
        return 0 if self.top_ids is None else int(self.top_ids.shape[1])

    def truncated(self, top_m: int) -> ReadingPass:
        """The same pass keeping only the `top_m` most likely tokens per position (columns are sorted)."""
        if top_m > self.top_m:
            raise ValueError(f"top_m: this pass kept {self.top_m} tokens per position, asked for {top_m}")
        if top_m == self.top_m:
            return self
        probs = None if self.top_probs is None or not top_m else self.top_probs[:, :top_m]
        ids = None if self.top_ids is None or not top_m else self.top_ids[:, :top_m]
        return dataclasses.replace(self, top_probs=probs, top_ids=ids)

    @property
    def n_tokens(self) -> int:
        """Input tokens read (predictions made), separators included."""
        return int(self.predictions.shape[0])

    def describe(self) -> dict[str, object]:
        """JSON-able summary of the pass (no token ids)."""
        return {
            "n_texts": self.n_texts,
            "n_chunks": self.n_chunks,
            "seq_len": self.seq_len,
            "forward_s": round(self.forward_s, 4),
            "read_wall_s": round(self.wall_s, 4),
            "device": self.device,
            **({"top_m": self.top_m} if self.top_m else {}),
        }


def pack_texts(
    texts: Sequence[Sequence[int]], seq_len: int, separator_id: int | None, pad_id: int = 0
) -> tuple[torch.Tensor, np.ndarray, int]:
    """Texts back to back (separator after each) in (n_chunks, seq_len) rows, trailing padding in the last row.

    Returns (chunks int64, doc id per stream position (-1 separator, -2 padding), number of real positions).
    """
    if seq_len < 1:
        raise ValueError(f"seq_len: must be >= 1, got {seq_len}")
    arrays = [np.asarray(t, dtype=np.int64).reshape(-1) for t in texts]
    arrays = [a for a in arrays if a.size]
    if not arrays:
        raise ValueError("texts: nothing to read (no text with a token)")
    low = min(int(a.min()) for a in arrays)
    if low < 0:
        raise ValueError(f"texts: negative token id {low}")
    sep = [] if separator_id is None else [np.array([separator_id], dtype=np.int64)]
    pieces = [p for a in arrays for p in (a, *sep)]
    flat = np.concatenate(pieces)
    doc = np.concatenate(
        [p for i, a in enumerate(arrays) for p in (np.full(a.size, i), *([np.array([_DOC_SEPARATOR])] if sep else []))]
    )
    n_real = flat.size
    n_chunks = math.ceil(n_real / seq_len)
    pad = n_chunks * seq_len - n_real
    flat = np.concatenate([flat, np.full(pad, pad_id, dtype=np.int64)])
    doc = np.concatenate([doc, np.full(pad, _DOC_PAD)])
    return torch.from_numpy(flat).view(n_chunks, seq_len), doc, n_real


def autocast_context(device: torch.device, amp: str | None) -> contextlib.AbstractContextManager:
    """bf16 / fp16 autocast for a forward pass on CUDA (`amp` None: bf16 where supported); nothing on the CPU."""
    if device.type != "cuda" or amp == "none":
        return contextlib.nullcontext()
    if amp is None:
        amp = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    if dtype is None:
        raise ValueError(f"amp: must be bf16, fp16, none or None (automatic), got {amp!r}")
    return torch.autocast(device_type="cuda", dtype=dtype)


def model_device(model: torch.nn.Module) -> torch.device:
    """Device of the model's first parameter (CPU for a model without parameters)."""
    try:
        return next(model.parameters()).device
    except (StopIteration, AttributeError):
        return torch.device("cpu")


def body_and_head(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module] | None:
    """The transformer body (hidden states) and the LM head of a Hugging Face causal LM, or None."""
    get_decoder = getattr(model, "get_decoder", None)
    get_head = getattr(model, "get_output_embeddings", None)
    if not callable(get_decoder) or not callable(get_head):
        return None
    try:
        body, head = get_decoder(), get_head()
    except (AttributeError, NotImplementedError, TypeError):
        return None
    if not isinstance(body, torch.nn.Module) or not isinstance(head, torch.nn.Module) or body is model:
        return None
    return body, head


def _top_m_dtype(width: int) -> torch.dtype:
    """The narrowest signed integer type that holds every logit index (int16 up to 32,767 entries)."""
    return torch.int16 if width <= 1 << 15 else torch.int32


_TOP_M_FOLD = 4  # columns folded together per level of `top_m_values`


def top_m_values(values: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The m largest entries of each row of `values` (n, V) and their column ids, largest first, as `topk` gives
    them (the same values; ties may pick other ids among equal values), at about half its cost on CPU at V = 32,000.

    Why it is exact: fold the row into V / f columns of f entries (entries j, j + V/f, ...), and take the m columns
    with the largest maxima. Every one of the row's m largest entries lies in one of them: an entry x outside them
    lies in a column whose maximum is below m other columns' maxima, that is m distinct entries above x. So the
    top-m of the m * f entries of those columns is the row's top-m. The column maxima are themselves ranked by the
    same fold, down to a width where `topk` is cheap; each level costs one strided max over its width.
    """
    n, width = values.shape
    m = min(m, width)
    if width <= 2 * m * _TOP_M_FOLD:
        return values.topk(m, dim=-1, sorted=True)
    cols = -(-width // _TOP_M_FOLD)
    if cols * _TOP_M_FOLD != width:  # pad with -inf: never among the top-m of a row of width > m
        values = torch.nn.functional.pad(values, (0, cols * _TOP_M_FOLD - width), value=float("-inf"))
    folded = values.view(n, _TOP_M_FOLD, cols)
    _, best = top_m_values(folded.amax(dim=1), m)
    candidates = folded.gather(2, best.unsqueeze(1).expand(n, _TOP_M_FOLD, m)).reshape(n, _TOP_M_FOLD * m)
    top, where = candidates.topk(m, dim=-1, sorted=True)
    return top, (where // m) * cols + best.gather(1, where % m)


def _reduce_logits(logits: torch.Tensor, top_m: int) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """argmax of `logits` (..., V), and with `top_m` > 0 the top-m probabilities (fp16) and ids of its softmax.

    The top-1 prediction is the first maximal index, as `argmax` gives it, with or without `top_m`: the same bits.
    On CPU `max(dim).indices` is about twice as fast as `argmax` at V = 32,000 (measured), and with `top_m` the
    top-1 is the top-m pass's first column, except on rows whose two best logits tie (topk orders ties freely).
    """
    if not top_m:
        return logits.max(dim=-1).indices, None, None
    values = logits.float()
    # sorted (most likely first), so that the first m' columns of a top-m pass are its top-m' (m' < m)
    flat = values.reshape(-1, values.shape[-1])
    top_values, top_ids = (t.reshape(*values.shape[:-1], -1) for t in top_m_values(flat, top_m))
    if top_values.shape[-1] < 2:
        top1 = values.max(dim=-1).indices  # one column cannot show a tie
    else:
        top1 = top_ids[..., 0].clone()
        tied = top_values[..., 0] == top_values[..., 1]
        if bool(tied.any()):
            top1[tied] = values[tied].max(dim=-1).indices
    # log-sum-exp around the row maximum the top-m pass already found (torch.logsumexp would search it again)
    row_max = top_values[..., :1]
    lse = row_max + (values - row_max).exp_().sum(dim=-1, keepdim=True).log_()
    probs = (top_values - lse).exp().to(torch.float16)
    return top1, probs, top_ids.to(_top_m_dtype(logits.shape[-1]))


def _fused_top1(
    body: torch.nn.Module, head: torch.nn.Module, batch: torch.Tensor, chunk: int, top_m: int = 0
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """argmax of head(body(batch)) computed `chunk` positions at a time: the (batch, seq, vocab) logits never exist.

    With `top_m` > 0 also the top-m probabilities and ids of every position, from the same slices of logits.
    """
    hidden = body(input_ids=batch, use_cache=False).last_hidden_state
    flat = hidden.reshape(-1, hidden.shape[-1])
    parts = [_reduce_logits(head(flat[i : i + chunk]), top_m) for i in range(0, flat.shape[0], chunk)]
    top1 = torch.cat([p[0] for p in parts]).reshape(batch.shape)
    if not top_m:
        return top1, None, None
    probs = torch.cat([p[1] for p in parts]).reshape(*batch.shape, -1)  # type: ignore[misc]
    ids = torch.cat([p[2] for p in parts]).reshape(*batch.shape, -1)  # type: ignore[misc]
    return top1, probs, ids


def top1_predictions(
    model: torch.nn.Module,
    chunks: torch.Tensor,
    batch_size: int = 32,
    amp: str | None = None,
    fused_head: bool | None = None,
) -> tuple[torch.Tensor, float]:
    """argmax of B's logits at every position of every chunk: ((n_chunks, seq_len) int64 on CPU, forward seconds).

    Batched forward passes under `inference_mode`; predictions stay on the device until the end (no sync per batch).
    `fused_head` (default: when the model exposes `get_decoder` / `get_output_embeddings`, as Hugging Face causal
    LMs do) runs the body once and the LM head with its argmax on slices of positions, so the (batch, seq, vocab)
    logits are never written (they take gigabytes at 128k vocabularies). Two rows of the first batch are checked
    against the plain forward pass (argmax is invariant under the final logit scaling or soft-capping some models
    apply); a disagreement falls back to the plain path.
    """
    predictions, _, _, forward_s = reading_predictions(model, chunks, batch_size, amp, fused_head)
    return predictions, forward_s


def reading_predictions(
    model: torch.nn.Module,
    chunks: torch.Tensor,
    batch_size: int = 32,
    amp: str | None = None,
    fused_head: bool | None = None,
    top_m: int = 0,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, float]:
    """`top1_predictions`, and with `top_m` > 0 B's top-m probabilities and ids from the same logits.

    Returns (top-1 (n_chunks, seq_len) int64, probs (n_chunks, seq_len, m) fp16 or None, ids int16/int32 or None,
    forward seconds), all on the CPU. The top-m work runs only when asked for, so the argmax test costs the same.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
    if top_m < 0:
        raise ValueError(f"top_m: must be >= 0, got {top_m}")
    device = model_device(model)
    parts = body_and_head(model) if fused_head is not False else None
    if fused_head and parts is None:
        raise ValueError("fused_head: the model exposes no get_decoder() / get_output_embeddings()")
    vocab = getattr(parts[1], "out_features", None) if parts else None
    chunk = max(1, (1 << 22) // vocab) if isinstance(vocab, int) and vocab > 0 else 1024
    outputs, prob_parts, id_parts = [], [], []
    start = time.perf_counter()
    with torch.inference_mode(), autocast_context(device, amp):
        for first in range(0, chunks.shape[0], batch_size):
            batch = chunks[first : first + batch_size].to(device, non_blocking=True)
            if parts is not None:
                top1, probs, ids = _fused_top1(*parts, batch, chunk, top_m)
                if first == 0:  # check two rows against the plain forward pass
                    plain = model(input_ids=batch[:2], use_cache=False).logits.argmax(dim=-1)
                    if (plain != top1[:2]).float().mean().item() > 1e-3:
                        log.warning("fused LM head disagrees with the model's forward pass; using the plain path")
                        parts = None
                        top1, probs, ids = _reduce_logits(model(input_ids=batch, use_cache=False).logits, top_m)
            else:
                top1, probs, ids = _reduce_logits(model(input_ids=batch, use_cache=False).logits, top_m)
            outputs.append(top1.to(torch.int32))
            if top_m:
                prob_parts.append(probs)
                id_parts.append(ids)
        predictions = torch.cat(outputs).cpu().to(torch.int64)
        top_probs = torch.cat(prob_parts).cpu() if top_m else None
        top_ids = torch.cat(id_parts).cpu() if top_m else None
    return predictions, top_probs, top_ids, time.perf_counter() - start


def read_texts(
    model: torch.nn.Module,
    texts: Sequence[Sequence[int]],
    k: int,
    *,
    seq_len: int = 256,
    batch_size: int = 32,
    separator_id: int | None = None,
    pad_id: int = 0,
    amp: str | None = None,
    fused_head: bool | None = None,
    top_m: int = 0,
) -> ReadingPass:
    """Run B over `texts` (token id lists) in reading mode; see the module docstring.

    `seq_len` is capped by the model's `max_position_embeddings` when it has one. `separator_id` (e.g. eos) is
    put after each text; windows that touch it or span two texts are not eligible. `fused_head`: see
    `top1_predictions`. `top_m` > 0 also keeps B's m most likely tokens per position (same forward pass).
    """
    start = time.perf_counter()
    max_positions = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if isinstance(max_positions, int) and max_positions > 0:
        seq_len = min(seq_len, max_positions)
    chunks, doc, n_real = pack_texts(texts, seq_len, separator_id, pad_id)
    predictions, top_probs, top_ids, forward_s = reading_predictions(model, chunks, batch_size, amp, fused_head, top_m)
    predictions = predictions.reshape(-1)[:n_real]
    if top_probs is not None and top_ids is not None:
        top_probs = top_probs.reshape(-1, top_probs.shape[-1])[:n_real]
        top_ids = top_ids.reshape(-1, top_ids.shape[-1])[:n_real]

    flat = chunks.reshape(-1).numpy()
    position = np.arange(n_real) % seq_len
    if k:
        padded = np.concatenate([np.zeros(k - 1, dtype=np.int64), flat])
        windows = np.lib.stride_tricks.sliding_window_view(padded, k)[:n_real]  # row i = flat[i-k+1 .. i]
        first = np.maximum(np.arange(n_real) - (k - 1), 0)
        has_window = (position >= k - 1) & (doc[first] == doc[:n_real]) & (doc[:n_real] >= 0)
    else:
        windows = np.zeros((n_real, 0), dtype=np.int64)
        has_window = doc[:n_real] >= 0
    # In-sequence exclusion: a window counts as seen from its first position in the chunk (B's whole context),
    # whatever text it spans; positions before the first full window have none.
    complete = position >= k - 1
    codes = np.full(n_real, -1, dtype=np.int64)
    codes[complete] = pd.factorize(row_ids(torch.from_numpy(windows[complete])))[0]
    chunk_id = np.arange(n_real) // seq_len
    seen_key = chunk_id * (int(codes.max()) + 2) + codes + 1
    fresh = complete & ~pd.Series(seen_key).duplicated(keep="first").to_numpy()
    return ReadingPass(
        k=k,
        windows=torch.from_numpy(np.array(windows, dtype=np.int64)),
        predictions=predictions,
        has_window=torch.from_numpy(has_window),
        fresh_in_sequence=torch.from_numpy(fresh),
        n_texts=len(texts),
        n_chunks=int(chunks.shape[0]),
        seq_len=seq_len,
        forward_s=forward_s,
        wall_s=time.perf_counter() - start,
        device=str(model_device(model)),
        top_probs=top_probs,
        top_ids=top_ids,
    )


def eligible_positions(
    wm: Watermark, reading: ReadingPass, phi: Phi | None = None, in_sequence_exclusion: bool = True
) -> torch.Tensor:
    """Boolean (n_tokens,) mask of the positions a reading-mode test may score (see the module docstring): the
    window lies inside one text and the watermark domain, is new in its sequence, and is in phi when given."""
    eligible = reading.has_window.clone()
    if wm.k:
        eligible &= (reading.windows < wm.vocab_size).all(dim=1)
    if in_sequence_exclusion:
        eligible &= reading.fresh_in_sequence
    if phi is not None:
        if phi.k != wm.k:
            raise ValueError(f"phi holds {phi.k}-grams but the watermark has k={wm.k}")
        eligible &= rows_in(reading.windows, phi.grams)
    return eligible


def open_model_test(
    wm: Watermark,
    reading: ReadingPass,
    *,
    phi: Phi | None = None,
    dedup: str = "window+token",
    in_sequence_exclusion: bool = True,
    supervised: bool = False,
    control: str = "none",
    mid_p: bool = False,
    curve_points: int = 50,
    info: dict[str, object] | None = None,
) -> RadioactivityResult:
    """One pooled open-model test of `reading` (B's predictions) under watermark `wm`; see the module docstring."""
    if reading.k != wm.k:
        raise ValueError(f"reading pass has windows of k={reading.k} but the watermark has k={wm.k}")
    start = time.perf_counter()
    eligible = eligible_positions(wm, reading, phi, in_sequence_exclusion)
    scored = score_with_tape(wm, reading.windows, reading.predictions, eligible, dedup)
    detection = result_from_scores(
        wm,
        scored,
        dedup=dedup,
        prompt_exclusion="in-sequence" if in_sequence_exclusion else "none",
        phi_size=None if phi is None else phi.size,
        mid_p=mid_p,
        test="open",
    )
    wall = reading.wall_s + time.perf_counter() - start
    return RadioactivityResult(
        detection=detection,
        setting="open",
        supervised=supervised,
        control=control,
        in_sequence_exclusion=in_sequence_exclusion,
        phi=None if phi is None else phi.describe(),
        tokens_per_s=reading.n_tokens / wall if wall > 0 else float("nan"),
        wall_s=wall,
        curve=pvalue_curve(wm, scored.scores, curve_points),
        curve_band=pvalue_band(wm, scored.scores, curve_points),
        info={**reading.describe(), **(info or {})},
    )
