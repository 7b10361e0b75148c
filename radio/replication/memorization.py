"""Data-free memorization detection after Wen et al., "Detecting, Explaining, and Mitigating Memorization in
Diffusion Models" (ICLR 2024): a prompt whose text-conditional noise prediction differs a lot from the
unconditional one over the first sampling steps is a memorized prompt, and the words that drive that difference
are its trigger words.

Per prompt and seed, along the sampling trajectory that seed starts (DDIM, eta 0, the given guidance), the
detection value of step t is the L2 norm of eps(x_t, prompt) - eps(x_t, "") over the whole sample; a seed's value
is its mean over the first `steps` steps, and a prompt's score the mean over its seeds. Noise predictions are
compared in epsilon space whatever the model predicts (a v-prediction model's difference is sqrt(alpha_bar_t)
times its v difference), so scores of different models read on one scale. Nothing here needs the training data:
only the model, the prompt and seeds.

Token attribution, the paper's way (`method="gradient"`): the gradient of the first step's squared difference,
summed over seeds, with respect to each input token embedding of the prompt; a word's attribution is the L2 norm
of its tokens' gradients. `method="drop"` removes one word at a time and reports how much the score falls.

`first_step_estimates` gives each seed's first clean-sample estimate (x0 from the first sampling step's output),
the input of a second model-only detector (`memorization_eval.denoised_agreement`): where the noise difference
measures how far a prompt moves the prediction, that one measures whether it moves every seed to the same image.
`differences_and_estimates` gives both from one pass (the first step's two UNet branches serve both).

Two model adapters: `TinyNoiseDifference` (the embedded default's `TinyT2I`) and `PipelineNoiseDifference` (a
diffusers `StableDiffusionPipeline`, the `sd14` path); `noise_difference_model` builds the right one from a loaded
generator. `detection_quality` gives ROC AUC and the TPR at a false-positive rate against labels.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import torch

from radio.replication.generators.base import seeded_noise

AttributionMethod = Literal["gradient", "drop"]


def _wide(x: torch.Tensor) -> torch.Tensor:
    """Half-precision outputs (a float16 pipeline) in float32 for the difference; float32/64 unchanged."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


@runtime_checkable
class NoiseDifferenceModel(Protocol):
    """What the detector needs of a text-to-image diffusion model: tokens, text states and noise predictions."""

    device: torch.device
    sample_shape: tuple[int, ...]  # one sample's (channels, height, width) in the space the UNet denoises

    def tokenize(self, prompts: Sequence[str]) -> torch.Tensor:
        """Token ids (n, length) as the model's text encoder reads them."""
        ...

    def token_embedding(self) -> torch.nn.Module:
        """The text encoder's input token embedding module (hooked for the gradient attribution)."""
        ...

    def encode(self, ids: torch.Tensor) -> torch.Tensor:
        """Text states (n, length, dim) the UNet cross-attends to."""
        ...

    def predict(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """The UNet's raw output (its own prediction type) for samples `x` at timestep `t`."""
        ...

    def scheduler(self) -> Any:
        """A fresh DDIM scheduler on the model's noise schedule (the sampler of the trajectories)."""
        ...

    def words(self, ids: torch.Tensor) -> list[tuple[str, list[int]]]:
        """The prompt's words and the token positions of each (special and padding tokens left out)."""
        ...


def _epsilon_difference(scheduler: Any, out_c: torch.Tensor, out_u: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """eps_c - eps_u from two raw outputs of the same x_t: identical for epsilon, sqrt(alpha_bar_t) (v_c - v_u) for
    v-prediction (eps = sqrt(alpha_bar) v + sqrt(1 - alpha_bar) x, whose x terms cancel)."""
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return out_c - out_u
    if kind == "v_prediction":
        alpha_bar = scheduler.alphas_cumprod.to(out_c.device)[t.long()].to(out_c.dtype)
        return alpha_bar.sqrt() * (out_c - out_u)
    raise ValueError(f"prediction_type {kind!r}: the detector reads epsilon or v_prediction models")


@torch.no_grad()
def _first_steps(
    model: NoiseDifferenceModel,
    prompts: Sequence[str],
    seeds: Sequence[int],
    steps: int,
    num_inference_steps: int,
    guidance_scale: float,
    batch_size: int,
    keep_estimates: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """The one pass both detectors read: the first `steps` DDIM steps of each (prompt, seed) trajectory, both
    branches per step; the noise differences of every step and the clean estimates of the first (x0 from the guided
    output at the start noise; zero columns without `keep_estimates`)."""
    if len(prompts) != len(seeds):
        raise ValueError(f"seeds: {len(seeds)} seeds for {len(prompts)} prompts")
    if not 1 <= steps <= num_inference_steps:
        raise ValueError(f"steps: must be in [1, num_inference_steps={num_inference_steps}], got {steps}")
    empty = model.encode(model.tokenize([""]).to(model.device))
    out = np.empty((len(prompts), steps), dtype=np.float64)
    estimates = np.empty((len(prompts), int(np.prod(model.sample_shape)) if keep_estimates else 0))
    for start in range(0, len(prompts), batch_size):
        stop = min(start + batch_size, len(prompts))
        cond = model.encode(model.tokenize(list(prompts[start:stop])).to(model.device))
        context = torch.cat([empty.expand(stop - start, -1, -1).to(cond.dtype), cond])
        scheduler = model.scheduler()
        scheduler.set_timesteps(num_inference_steps, device=model.device)
        x = seeded_noise(seeds[start:stop], model.sample_shape).to(model.device, cond.dtype)
        x = x * scheduler.init_noise_sigma
        for k, t in enumerate(scheduler.timesteps[:steps]):
            x_in = scheduler.scale_model_input(x, t)
            raw_u, raw_c = model.predict(torch.cat([x_in, x_in]), t, context).chunk(2)
            diff = _epsilon_difference(scheduler, _wide(raw_c), _wide(raw_u), t)
            out[start:stop, k] = diff.flatten(1).norm(dim=1).double().cpu().numpy()
            guided = raw_u + guidance_scale * (raw_c - raw_u)
            if k == 0 and keep_estimates:
                clean = _clean_estimate(scheduler, _wide(guided), _wide(x_in), t)
                estimates[start:stop] = clean.flatten(1).double().cpu().numpy()
            if k + 1 < steps:  # the last scored step needs no update
                x = scheduler.step(guided, t, x, eta=0.0).prev_sample
    return out, estimates


def noise_differences(
    model: NoiseDifferenceModel,
    prompts: Sequence[str],
    seeds: Sequence[int],
    *,
    steps: int = 5,
    num_inference_steps: int = 30,
    guidance_scale: float = 1.0,
    batch_size: int = 50,
) -> np.ndarray:
    """(len(prompts), steps) detection values: row i is ||eps(x_t, prompts[i]) - eps(x_t, "")||_2 at each of the
    first `steps` DDIM steps of the trajectory that seeds[i] starts, sampled at `guidance_scale`.

    The start noise of seed s is the generators' (`seeded_noise`), so at the same settings the trajectory is the
    one the audit's generation of (prompt, s) follows.
    """
    settings = (steps, num_inference_steps, guidance_scale, batch_size)
    return _first_steps(model, prompts, seeds, *settings, keep_estimates=False)[0]


def _clean_estimate(scheduler: Any, out: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The model's estimate of the clean sample x0 from its raw output at x_t (epsilon, v or sample prediction)."""
    kind = scheduler.config.prediction_type
    alpha_bar = scheduler.alphas_cumprod.to(out.device)[t.long()].to(out.dtype)
    if kind == "epsilon":
        return (x - (1 - alpha_bar).sqrt() * out) / alpha_bar.sqrt()
    if kind == "v_prediction":
        return alpha_bar.sqrt() * x - (1 - alpha_bar).sqrt() * out
    if kind == "sample":
        return out
    raise ValueError(f"prediction_type {kind!r}: expected epsilon, v_prediction or sample")


def differences_and_estimates(
    model: NoiseDifferenceModel,
    prompts: Sequence[str],
    seeds: Sequence[int],
    *,
    steps: int = 5,
    num_inference_steps: int = 30,
    guidance_scale: float = 1.0,
    batch_size: int = 50,
) -> tuple[np.ndarray, np.ndarray]:
    """`noise_differences` and `first_step_estimates` of the same samples from one pass (the first step's two
    UNet branches serve both)."""
    settings = (steps, num_inference_steps, guidance_scale, batch_size)
    return _first_steps(model, prompts, seeds, *settings, keep_estimates=True)


def first_step_estimates(
    model: NoiseDifferenceModel,
    prompts: Sequence[str],
    seeds: Sequence[int],
    *,
    num_inference_steps: int = 30,
    guidance_scale: float = 1.0,
    batch_size: int = 50,
) -> np.ndarray:
    """(len(prompts), sample size) float64: row i is the model's estimate of the clean sample at the first DDIM step
    of the trajectory seeds[i] starts (x0 from the guided output at the start noise), flattened.

    The start noise is the generators' (`seeded_noise`), so the estimate is the first one the audit's generation of
    (prompt, seed) makes. Both branches run (the pass `noise_differences` shares: `differences_and_estimates`).
    """
    settings = {"steps": 1, "num_inference_steps": num_inference_steps, "guidance_scale": guidance_scale}
    return differences_and_estimates(model, prompts, seeds, batch_size=batch_size, **settings)[1]


@dataclass(frozen=True)
class MemorizationScore:
    """A prompt's data-free memorization score: the mean over its seeds of the mean detection value of the first
    `steps` sampling steps (large: memorized), with the per-seed values."""

    prompt: str
    score: float
    per_seed: tuple[float, ...]
    seeds: tuple[int, ...]
    steps: int
    guidance_scale: float


def memorization_scores(
    model: NoiseDifferenceModel,
    prompts: Sequence[str],
    seeds: Sequence[int],
    *,
    steps: int = 5,
    num_inference_steps: int = 30,
    guidance_scale: float = 1.0,
    batch_size: int = 50,
) -> list[MemorizationScore]:
    """One `MemorizationScore` per prompt, every prompt on the same `seeds` (paired, like the audit's generations)."""
    if not seeds:
        raise ValueError("seeds: at least one seed")
    flat_prompts = [p for p in prompts for _ in seeds]
    flat_seeds = [int(s) for _ in prompts for s in seeds]
    values = noise_differences(
        model,
        flat_prompts,
        flat_seeds,
        steps=steps,
        num_inference_steps=num_inference_steps,
        guidance_scale=guidance_scale,
        batch_size=batch_size,
    ).mean(axis=1)
    per_prompt = values.reshape(len(prompts), len(seeds))
    return [
        MemorizationScore(p, float(row.mean()), tuple(map(float, row)), tuple(map(int, seeds)), steps, guidance_scale)
        for p, row in zip(prompts, per_prompt, strict=True)
    ]


# ------------------------------------------------------------------------------------------------ attribution


@dataclass(frozen=True)
class TokenAttribution:
    """How much each word of a prompt drives its memorization score (`method`: gradient norm, or the score's drop
    when the word is removed); `score` is the full prompt's score under the same settings (drop) or its first-step
    squared difference summed over seeds (gradient)."""

    prompt: str
    method: str
    words: tuple[str, ...]
    values: tuple[float, ...]
    score: float

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        """The `k` words with the largest attribution, largest first (ties: prompt order)."""
        order = sorted(range(len(self.words)), key=lambda i: (-self.values[i], i))
        return [(self.words[i], self.values[i]) for i in order[:k]]


@contextlib.contextmanager
def _replaced_output(module: torch.nn.Module, value: torch.Tensor) -> Iterator[None]:
    """Make `module`'s forward return `value` (the leaf the gradient is taken against) for the duration."""
    handle = module.register_forward_hook(lambda _m, _i, _o: value)
    try:
        yield
    finally:
        handle.remove()


def _gradient_attribution(
    model: NoiseDifferenceModel, prompt: str, seeds: Sequence[int], num_inference_steps: int
) -> TokenAttribution:
    ids = model.tokenize([prompt]).to(model.device)
    embedding = model.token_embedding()
    with torch.no_grad():
        base = embedding(ids)
        empty = model.encode(model.tokenize([""]).to(model.device))
    leaf = base.detach().clone().requires_grad_(True)
    scheduler = model.scheduler()
    scheduler.set_timesteps(num_inference_steps, device=model.device)
    t = scheduler.timesteps[0]
    n = len(seeds)
    x = seeded_noise(list(seeds), model.sample_shape).to(model.device, base.dtype) * scheduler.init_noise_sigma
    x = scheduler.scale_model_input(x, t)
    with torch.no_grad():
        raw_u = model.predict(x, t, empty.expand(n, -1, -1))
    with torch.enable_grad(), _replaced_output(embedding, leaf):
        cond = model.encode(ids)
        raw_c = model.predict(x, t, cond.expand(n, -1, -1))
        diff = _epsilon_difference(scheduler, _wide(raw_c), _wide(raw_u), t)
        loss = diff.pow(2).sum()
        (grad,) = torch.autograd.grad(loss, leaf)
    per_token = _wide(grad[0])
    words, values = [], []
    for word, positions in model.words(ids):
        words.append(word)
        values.append(float(per_token[positions].norm()))
    return TokenAttribution(prompt, "gradient", tuple(words), tuple(values), float(loss.detach()))


def _drop_attribution(
    model: NoiseDifferenceModel,
    prompt: str,
    seeds: Sequence[int],
    steps: int,
    num_inference_steps: int,
    guidance_scale: float,
) -> TokenAttribution:
    words = prompt.split()
    variants = [prompt, *(" ".join(words[:i] + words[i + 1 :]) for i in range(len(words)))]
    scores = memorization_scores(
        model, variants, seeds, steps=steps, num_inference_steps=num_inference_steps, guidance_scale=guidance_scale
    )
    full = scores[0].score
    return TokenAttribution(prompt, "drop", tuple(words), tuple(full - s.score for s in scores[1:]), full)


def token_attribution(
    model: NoiseDifferenceModel,
    prompt: str,
    seeds: Sequence[int],
    *,
    method: AttributionMethod = "gradient",
    steps: int = 5,
    num_inference_steps: int = 30,
    guidance_scale: float = 1.0,
) -> TokenAttribution:
    """Which words of `prompt` drive its memorization score, over `seeds`.

    `gradient` (Wen et al.): at the first sampling step, the gradient of the squared difference summed over seeds
    with respect to every input token embedding; a word's value is its tokens' gradient norm. `drop`: the score
    of the prompt minus the score with that word removed (whitespace words; `steps` and `guidance_scale` apply).
    """
    if not prompt.strip():
        raise ValueError("prompt: empty")
    if not seeds:
        raise ValueError("seeds: at least one seed")
    if method == "gradient":
        return _gradient_attribution(model, prompt, seeds, num_inference_steps)
    if method == "drop":
        return _drop_attribution(model, prompt, seeds, steps, num_inference_steps, guidance_scale)
    raise ValueError(f"method: {method!r} is not 'gradient' or 'drop'")


# --------------------------------------------------------------------------------------------- detection quality


@dataclass(frozen=True)
class DetectionQuality:
    """How well scores separate positives (label True: memorized / replicated) from negatives.

    `auc`: ROC AUC, the probability that a random positive scores above a random negative (ties count half).
    `tpr`: the share of positives flagged at the lowest threshold whose false-positive rate is at most `max_fpr`
    (flagged: score strictly above `threshold`, the k+1-th highest negative score where k = floor(max_fpr * n_neg)).
    """

    auc: float
    tpr: float
    max_fpr: float
    fpr: float
    threshold: float
    n_pos: int
    n_neg: int


def _checked(scores: Sequence[float] | np.ndarray, labels: Sequence[bool] | np.ndarray) -> tuple[np.ndarray, ...]:
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    if s.shape != y.shape or s.ndim != 1:
        raise ValueError(f"scores {s.shape} and labels {y.shape} must be two 1-d arrays of one length")
    if not np.isfinite(s).all():
        raise ValueError("scores: every score must be finite")
    return s[y], s[~y]


def roc_auc(scores: Sequence[float] | np.ndarray, labels: Sequence[bool] | np.ndarray) -> float:
    """ROC AUC by the Mann-Whitney statistic on average ranks (ties count half); NaN without both classes."""
    from scipy.stats import rankdata

    pos, neg = _checked(scores, labels)
    if not pos.size or not neg.size:
        return float("nan")
    ranks = rankdata(np.concatenate([pos, neg]))
    u = ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2
    return float(u / (pos.size * neg.size))


def roc_curve(scores: Sequence[float] | np.ndarray, labels: Sequence[bool] | np.ndarray) -> tuple[np.ndarray, ...]:
    """(fpr, tpr, thresholds) of the rule "score >= threshold" at every distinct score, from (0, 0) to (1, 1)."""
    pos, neg = _checked(scores, labels)
    cuts = np.unique(np.concatenate([pos, neg]))[::-1]
    fpr = np.array([0.0, *((neg >= c).mean() if neg.size else np.nan for c in cuts)])
    tpr = np.array([0.0, *((pos >= c).mean() if pos.size else np.nan for c in cuts)])
    return fpr, tpr, np.array([np.inf, *cuts])


def detection_quality(
    scores: Sequence[float] | np.ndarray, labels: Sequence[bool] | np.ndarray, max_fpr: float = 0.01
) -> DetectionQuality:
    """ROC AUC and the TPR at false-positive rate `max_fpr` (see `DetectionQuality`)."""
    if not 0.0 <= max_fpr < 1.0:
        raise ValueError(f"max_fpr: must be in [0, 1), got {max_fpr}")
    pos, neg = _checked(scores, labels)
    if not pos.size or not neg.size:
        nan = float("nan")
        return DetectionQuality(nan, nan, max_fpr, nan, nan, int(pos.size), int(neg.size))
    allowed = int(np.floor(max_fpr * neg.size + 1e-12))
    threshold = float(np.sort(neg)[::-1][allowed]) if allowed < neg.size else -np.inf
    return DetectionQuality(
        auc=roc_auc(scores, labels),
        tpr=float((pos > threshold).mean()),
        max_fpr=max_fpr,
        fpr=float((neg > threshold).mean()),
        threshold=threshold,
        n_pos=int(pos.size),
        n_neg=int(neg.size),
    )


# ------------------------------------------------------------------------------------------------- adapters


class TinyNoiseDifference:
    """The detector's view of a `TinyT2I` (the embedded default's word-level model; pixel space)."""

    def __init__(self, model: Any) -> None:
        """Wrap a loaded `TinyT2I` (its networks are put in eval mode; they stay on their device)."""
        from diffusers import DDIMScheduler

        self.model = model
        self.model.unet.eval()
        self.model.text_encoder.eval()
        self.device = next(model.unet.parameters()).device
        size = model.config.image_size
        self.sample_shape = (3, size, size)
        self._scheduler_config = DDIMScheduler.from_config(model.noise_scheduler.config).config
        self._specials = {model.tokenizer.pad_token_id, model.tokenizer.bos_token_id, model.tokenizer.eos_token_id}

    def tokenize(self, prompts: Sequence[str]) -> torch.Tensor:
        """Token ids, padded to the model's caption length."""
        return self.model.tokenize(list(prompts))

    def token_embedding(self) -> torch.nn.Module:
        """The CLIP text encoder's token embedding."""
        return self.model.text_encoder.get_input_embeddings()

    def encode(self, ids: torch.Tensor) -> torch.Tensor:
        """Last hidden states of the text encoder."""
        return self.model.encode_text(ids)

    def predict(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """The UNet's output (v or epsilon, as trained)."""
        return self.model.unet(x, t, encoder_hidden_states=context).sample

    def scheduler(self) -> Any:
        """DDIM on the training noise schedule (the tiny generator's sampler)."""
        from diffusers import DDIMScheduler

        return DDIMScheduler.from_config(self._scheduler_config)

    def words(self, ids: torch.Tensor) -> list[tuple[str, list[int]]]:
        """Word-level tokenizer: every non-special token is a word."""
        tokens = self.model.tokenizer.convert_ids_to_tokens(ids[0].tolist())
        return [(tok, [i]) for i, (tok, tid) in enumerate(zip(tokens, ids[0].tolist(), strict=True))
                if tid not in self._specials]  # fmt: skip


class PipelineNoiseDifference:
    """The detector's view of a diffusers `StableDiffusionPipeline` (latent space; CLIP BPE tokens)."""

    def __init__(self, pipeline: Any) -> None:
        """Wrap a loaded pipeline (on its device and dtype)."""
        from diffusers import DDIMScheduler

        self.pipeline = pipeline
        self.device = pipeline.unet.device
        size = pipeline.unet.config.sample_size
        self.sample_shape = (pipeline.unet.config.in_channels, size, size)
        self._scheduler_config = DDIMScheduler.from_config(pipeline.scheduler.config).config
        tok = pipeline.tokenizer
        self._specials = {tok.pad_token_id, tok.bos_token_id, tok.eos_token_id}

    def tokenize(self, prompts: Sequence[str]) -> torch.Tensor:
        """Token ids padded to the tokenizer's window (77 for CLIP), as the pipeline encodes prompts."""
        tok = self.pipeline.tokenizer
        return tok(
            list(prompts), padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="pt"
        ).input_ids

    def token_embedding(self) -> torch.nn.Module:
        """The CLIP text encoder's token embedding."""
        return self.pipeline.text_encoder.get_input_embeddings()

    def encode(self, ids: torch.Tensor) -> torch.Tensor:
        """Last hidden states of the text encoder (the pipeline's prompt embeddings, no clip skip)."""
        return self.pipeline.text_encoder(ids.to(self.device))[0].to(self.pipeline.unet.dtype)

    def predict(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """The UNet's output in latent space."""
        return self.pipeline.unet(x.to(self.pipeline.unet.dtype), t, encoder_hidden_states=context).sample

    def scheduler(self) -> Any:
        """DDIM on the pipeline's noise schedule (the `sd` generator's default sampler)."""
        from diffusers import DDIMScheduler

        return DDIMScheduler.from_config(self._scheduler_config)

    def words(self, ids: torch.Tensor) -> list[tuple[str, list[int]]]:
        """BPE tokens grouped into words: a word ends at a token carrying CLIP's `</w>` mark."""
        tokens = self.pipeline.tokenizer.convert_ids_to_tokens(ids[0].tolist())
        out: list[tuple[str, list[int]]] = []
        current, positions = "", []
        for i, (tok, tid) in enumerate(zip(tokens, ids[0].tolist(), strict=True)):
            if tid in self._specials:
                continue
            current += tok.removesuffix("</w>")
            positions.append(i)
            if tok.endswith("</w>"):
                out.append((current, positions))
                current, positions = "", []
        if positions:
            out.append((current, positions))
        return out


def noise_difference_model(generator: Any) -> NoiseDifferenceModel:
    """The detector's adapter for a loaded audit generator (`tiny` or `sd`), sharing its networks."""
    if hasattr(generator, "pipeline"):
        return PipelineNoiseDifference(generator.pipeline)
    if hasattr(generator, "model") and hasattr(generator.model, "unet"):
        return TinyNoiseDifference(generator.model)
    raise TypeError(f"{type(generator).__name__}: no noise-difference adapter (expected a tiny or sd generator)")
