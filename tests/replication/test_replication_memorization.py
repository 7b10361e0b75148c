"""The data-free memorization detector (Wen et al., ICLR 2024): detection metrics against independent
computations, the noise difference against a hand computation on both adapters, and a model whose answer is
known by construction (only one word reaches the text encoder's output, so only prompts holding it score)."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from radio.replication.memorization import (
    PipelineNoiseDifference,
    TinyNoiseDifference,
    detection_quality,
    first_step_estimates,
    memorization_scores,
    noise_difference_model,
    noise_differences,
    roc_auc,
    roc_curve,
    token_attribution,
)
from radio.replication.t2i import TinyT2I, TinyT2IConfig

SMALL = TinyT2IConfig(
    image_size=16,
    block_out_channels=(8, 16),
    attention_levels=(1,),
    norm_num_groups=4,
    attention_head_dim=8,
    text_hidden_size=16,
    text_heads=2,
    pooled_text_heads=2,
    text_intermediate_size=32,
    max_caption_tokens=12,
)
CAPTIONS = ["almond blossom by elise varnhagen", "green triangle on sand", "an astronaut in space", "blue ring"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread: batch splits then give bit-identical values."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _pairwise_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    pos, neg = scores[labels], scores[~labels]
    wins = [1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg)]
    return float(np.mean(wins))


def test_roc_auc_matches_the_pairwise_definition() -> None:
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 6, 40).astype(float)  # many ties
    labels = rng.random(40) < 0.4
    assert roc_auc(scores, labels) == pytest.approx(_pairwise_auc(scores, labels), abs=1e-12)
    assert roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    assert roc_auc([1, 2, 3], [0, 1, 1]) == 1.0 and roc_auc([3, 2, 1], [0, 1, 1]) == 0.0
    assert roc_auc([5, 5, 5], [0, 1, 1]) == 0.5
    assert np.isnan(roc_auc([1, 2], [1, 1]))


def test_roc_curve_runs_corner_to_corner_and_integrates_to_the_auc() -> None:
    rng = np.random.default_rng(1)
    scores = rng.normal(size=60) + np.repeat([0.0, 1.0], 30)
    labels = np.repeat([False, True], 30)
    fpr, tpr, cuts = roc_curve(scores, labels)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0) and np.isinf(cuts[0])
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc(scores, labels), abs=1e-12)


def test_tpr_at_one_percent_fpr_on_a_worked_example() -> None:
    # 200 negatives 0..199: 1% allows 2 false positives, so the threshold is the third-highest negative (197).
    negatives = np.arange(200.0)
    positives = np.array([150.5, 198.5, 199.5, 250.0])
    scores = np.concatenate([negatives, positives])
    labels = np.concatenate([np.zeros(200, bool), np.ones(4, bool)])
    quality = detection_quality(scores, labels, max_fpr=0.01)
    assert quality.threshold == 197.0
    assert quality.tpr == 0.75 and quality.fpr == 0.01
    assert (quality.n_pos, quality.n_neg) == (4, 200)
    # With fewer than 100 negatives 1% allows none: flagged means above every negative.
    few = detection_quality([1, 2, 3, 2.5, 0.5], [0, 0, 0, 1, 1], max_fpr=0.01)
    assert few.threshold == 3.0 and few.tpr == 0.0 and few.fpr == 0.0
    assert detection_quality([1, 2], [1, 1]).n_neg == 0


def _tiny(seed: int = 0) -> TinyT2I:
    return TinyT2I.create(SMALL, CAPTIONS, seed=seed)


def test_tiny_first_step_value_matches_a_hand_computation() -> None:
    """Step one's value: the v-prediction difference times sqrt(alpha_bar) (epsilon space), L2 over the image."""
    from diffusers import DDIMScheduler

    model = _tiny()
    adapter = TinyNoiseDifference(model)
    prompt, seed = "almond blossom by elise varnhagen", 7
    got = noise_differences(adapter, [prompt], [seed], steps=1, num_inference_steps=10)[0, 0]
    scheduler = DDIMScheduler.from_config(model.noise_scheduler.config)
    scheduler.set_timesteps(10)
    t = scheduler.timesteps[0]
    x = torch.randn((1, 3, 16, 16), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        v_c = model.unet(x, t, encoder_hidden_states=model.encode_text(model.tokenize([prompt]))).sample
        v_u = model.unet(x, t, encoder_hidden_states=model.encode_text(model.tokenize([""]))).sample
    alpha_bar = float(model.noise_scheduler.alphas_cumprod[int(t)])
    expected = float((alpha_bar**0.5 * (v_c - v_u)).flatten().norm())
    assert got == pytest.approx(expected, rel=1e-5)
    # The empty prompt is the unconditional branch itself: no difference at any step.
    assert np.all(noise_differences(adapter, [""], [seed], steps=3, num_inference_steps=10) == 0.0)


def test_tiny_first_step_estimate_matches_a_hand_computation() -> None:
    """v-prediction: x0 = sqrt(alpha_bar) x_t - sqrt(1 - alpha_bar) v at the first DDIM timestep; guided, the v of
    the guided output; batch splits change nothing."""
    from diffusers import DDIMScheduler

    model = _tiny()
    adapter = TinyNoiseDifference(model)
    prompts, seeds = ["almond blossom by elise varnhagen", "blue ring", "blue ring"], [7, 8, 9]
    scheduler = DDIMScheduler.from_config(model.noise_scheduler.config)
    scheduler.set_timesteps(10)
    t = scheduler.timesteps[0]
    alpha_bar = float(model.noise_scheduler.alphas_cumprod[int(t)])
    x = torch.cat([torch.randn((1, 3, 16, 16), generator=torch.Generator().manual_seed(s)) for s in seeds])
    with torch.no_grad():
        v_c = model.unet(x, t, encoder_hidden_states=model.encode_text(model.tokenize(prompts))).sample
        v_u = model.unet(x, t, encoder_hidden_states=model.encode_text(model.tokenize([""] * 3))).sample
    for guidance, v in ((1.0, v_c), (3.0, v_u + 3.0 * (v_c - v_u))):
        expected = (alpha_bar**0.5 * x - (1 - alpha_bar) ** 0.5 * v).flatten(1).double().numpy()
        got = first_step_estimates(adapter, prompts, seeds, num_inference_steps=10, guidance_scale=guidance)
        assert got.shape == (3, 768) and np.allclose(got, expected, rtol=1e-4, atol=1e-5)  # float32 order
    split = first_step_estimates(adapter, prompts, seeds, num_inference_steps=10, batch_size=2)
    assert np.allclose(split, first_step_estimates(adapter, prompts, seeds, num_inference_steps=10), atol=1e-6)
    with pytest.raises(ValueError, match="seeds"):
        first_step_estimates(adapter, prompts, seeds[:2])


class _OneImageModel:
    """A stand-in epsilon-prediction model with a known answer: for a prompt holding "almond" it predicts the noise
    that leads from x_t to one fixed image (a model that memorized it); for any other prompt, x_t itself (its clean
    estimate is then a rescaled start noise, different for every seed). Only the detector's arithmetic is tested."""

    def __init__(self) -> None:
        from diffusers import DDIMScheduler

        self._scheduler = DDIMScheduler(num_train_timesteps=1000, prediction_type="epsilon")
        self.device = torch.device("cpu")
        self.sample_shape = (3, 4, 4)
        self.image = torch.linspace(-1, 1, 48).reshape(1, 3, 4, 4)

    def tokenize(self, prompts: list[str]) -> torch.Tensor:
        return torch.tensor([[1.0 if "almond" in p else 0.0] for p in prompts])

    def encode(self, ids: torch.Tensor) -> torch.Tensor:
        return ids[:, None, :]

    def predict(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        alpha_bar = self._scheduler.alphas_cumprod[int(t)]
        memorized = (x - alpha_bar.sqrt() * self.image) / (1 - alpha_bar).sqrt()
        return torch.where(context[:, 0, :1, None, None] > 0, memorized, x)

    def scheduler(self) -> object:
        from diffusers import DDIMScheduler

        return DDIMScheduler.from_config(self._scheduler.config)


def test_known_answer_memorized_prompt_estimates_one_image_on_every_seed() -> None:
    from radio.replication.memorization_eval import block_fields

    model = _OneImageModel()
    seeds = list(range(6))
    memorized = first_step_estimates(model, ["almond blossom"] * 6, seeds, num_inference_steps=10)
    assert np.allclose(memorized, model.image.flatten().numpy()[None], atol=1e-4)
    hit = block_fields(model, "almond blossom", seeds, steps=1, num_inference_steps=10, guidance_scale=1.0)
    miss = block_fields(model, "blue ring", seeds, steps=1, num_inference_steps=10, guidance_scale=1.0)
    assert hit["denoised_agreement"] == pytest.approx(1.0)
    assert miss["denoised_agreement"] < 0.6
    assert len(hit["denoised_agreement_values"].split(";")) == 6


def test_scores_do_not_depend_on_the_batch() -> None:
    adapter = TinyNoiseDifference(_tiny())
    prompts = ["blue ring", "an astronaut in space", "blue ring"]
    batched = noise_differences(adapter, prompts, [3, 4, 5], steps=3, num_inference_steps=10, batch_size=3)
    alone = noise_differences(adapter, prompts[1:2], [4], steps=3, num_inference_steps=10)
    assert np.allclose(batched[1], alone[0], rtol=1e-5)
    scores = memorization_scores(adapter, ["blue ring"], [3, 5], steps=3, num_inference_steps=10)
    assert scores[0].per_seed == pytest.approx([batched[0].mean(), batched[2].mean()], rel=1e-6)
    assert scores[0].score == pytest.approx(np.mean(scores[0].per_seed))


def _embeddings(text_encoder: torch.nn.Module) -> torch.nn.Module:
    """The CLIP text embeddings module (transformers 5 dropped the `text_model` level)."""
    return getattr(text_encoder, "text_model", text_encoder).embeddings


def _trigger_only(model: TinyT2I, trigger: str) -> TinyT2I:
    """Zero every token embedding but `trigger`'s, and the position embeddings: the text encoder then sees the
    same (all-zero) input for every prompt without `trigger`, the empty one included."""
    text = _embeddings(model.text_encoder)
    with torch.no_grad():
        keep = text.token_embedding.weight[model.tokenizer.convert_tokens_to_ids(trigger)].clone()
        text.token_embedding.weight.zero_()
        text.token_embedding.weight[model.tokenizer.convert_tokens_to_ids(trigger)] = keep * 20
        text.position_embedding.weight.zero_()
    return model


def test_known_answer_only_prompts_with_the_trigger_word_score() -> None:
    adapter = TinyNoiseDifference(_trigger_only(_tiny(seed=1), "almond"))
    prompts = ["almond blossom", "blossom by elise", "an almond in space", "green triangle on sand", "blue ring"]
    labels = [True, False, True, False, False]
    scores = [s.score for s in memorization_scores(adapter, prompts, [0, 1, 2], steps=2, num_inference_steps=10)]
    assert all(s == 0.0 for s, y in zip(scores, labels, strict=True) if not y)
    assert all(s > 0.0 for s, y in zip(scores, labels, strict=True) if y)
    quality = detection_quality(scores, labels)
    assert quality.auc == 1.0 and quality.tpr == 1.0
    drop = token_attribution(adapter, "an almond in space", [0, 1], method="drop", steps=2, num_inference_steps=10)
    assert drop.words == ("an", "almond", "in", "space")
    assert drop.top(1)[0] == ("almond", pytest.approx(drop.score))  # without it the prompt scores 0
    grad = token_attribution(adapter, "an almond in space", [0, 1], num_inference_steps=10)
    # The gradient is taken at the prompt's own embeddings, where the zeroed words still carry a slope: it need
    # not single out the trigger here (it did not: "an" came first), so only its shape is known.
    assert grad.words == ("an", "almond", "in", "space") and grad.method == "gradient"
    assert all(np.isfinite(grad.values)) and grad.score > 0


def test_gradient_attribution_matches_a_finite_difference() -> None:
    """A word's value is the norm of the first-step loss's gradient wrt its embedding: central differences over
    every embedding coordinate (float64) give the same norm."""
    model = _tiny(seed=2)
    model.unet.double()
    model.text_encoder.double()
    adapter = TinyNoiseDifference(model)
    prompt, seeds = "almond blossom by elise", [0, 1]
    attribution = token_attribution(adapter, prompt, seeds, num_inference_steps=10)
    assert attribution.words == ("almond", "blossom", "by", "elise")
    word_id = model.tokenizer.convert_tokens_to_ids("blossom")
    weight = model.text_encoder.get_input_embeddings().weight
    h = 1e-5
    grad = []
    for k in range(weight.shape[1]):
        values = []
        for sign in (1.0, -1.0):
            with torch.no_grad():
                weight[word_id, k] += sign * h
            values.append(token_attribution(adapter, prompt, seeds, num_inference_steps=10).score)
            with torch.no_grad():
                weight[word_id, k] -= sign * h
        grad.append((values[0] - values[1]) / (2 * h))
    assert attribution.values[1] == pytest.approx(float(np.linalg.norm(grad)), rel=1e-4)
    assert attribution.values[1] > 0


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from radio.replication.generators.random_sd import build_random_sd_pipeline

    return build_random_sd_pipeline(tmp_path_factory.mktemp("random_sd") / "pipeline", seed=0, image_size=16)


def test_sd_pipeline_path_matches_a_hand_computation(sd_folder: Path) -> None:
    from radio.replication.generators import load_generator

    generator = load_generator("sd", sd_folder, device="cpu")
    adapter = noise_difference_model(generator)
    assert isinstance(adapter, PipelineNoiseDifference) and adapter.sample_shape == (4, 8, 8)
    pipe = generator.pipeline
    prompt, seed = "a x b", 3
    got = noise_differences(adapter, [prompt], [seed], steps=1, num_inference_steps=8)[0, 0]
    scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config)
    scheduler.set_timesteps(8)
    t = scheduler.timesteps[0]
    x = torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(seed)) * scheduler.init_noise_sigma

    def states(text: str) -> torch.Tensor:
        ids = pipe.tokenizer([text], padding="max_length", max_length=77, truncation=True, return_tensors="pt")
        return pipe.text_encoder(ids.input_ids)[0]

    with torch.no_grad():
        eps_c = pipe.unet(x, t, encoder_hidden_states=states(prompt)).sample
        eps_u = pipe.unet(x, t, encoder_hidden_states=states("")).sample
    assert got == pytest.approx(float((eps_c - eps_u).flatten().norm()), rel=1e-5)
    attribution = token_attribution(adapter, "almond blossom x", [0, 1], num_inference_steps=8)
    assert attribution.words == ("almond", "blossom", "x")  # BPE pieces grouped back into words
    assert all(v > 0 for v in attribution.values)


def test_sd_first_step_estimate_matches_a_hand_computation(sd_folder: Path) -> None:
    """Epsilon prediction in latent space: x0 = (x_t - sqrt(1 - alpha_bar) eps) / sqrt(alpha_bar)."""
    from radio.replication.generators import load_generator

    generator = load_generator("sd", sd_folder, device="cpu")
    adapter = noise_difference_model(generator)
    pipe = generator.pipeline
    scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config)
    scheduler.set_timesteps(8)
    t = scheduler.timesteps[0]
    x = torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(5)) * scheduler.init_noise_sigma
    ids = pipe.tokenizer(["a x b"], padding="max_length", max_length=77, truncation=True, return_tensors="pt")
    with torch.no_grad():
        eps = pipe.unet(x, t, encoder_hidden_states=pipe.text_encoder(ids.input_ids)[0]).sample
    alpha_bar = float(scheduler.alphas_cumprod[int(t)])
    expected = ((x - (1 - alpha_bar) ** 0.5 * eps) / alpha_bar**0.5).flatten().double().numpy()
    got = first_step_estimates(adapter, ["a x b"], [5], num_inference_steps=8)[0]
    assert np.allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_sd_known_answer_trigger_token(sd_folder: Path) -> None:
    from radio.replication.generators import load_generator

    generator = load_generator("sd", sd_folder, device="cpu")
    text = _embeddings(generator.pipeline.text_encoder)
    trigger = generator.pipeline.tokenizer.convert_tokens_to_ids("x</w>")
    with torch.no_grad():
        keep = text.token_embedding.weight[trigger].clone()
        text.token_embedding.weight.zero_()
        text.token_embedding.weight[trigger] = keep * 20
        text.position_embedding.weight.zero_()
    adapter = noise_difference_model(generator)
    prompts = ["a x b", "a b c", "x", "q r"]
    scores = [s.score for s in memorization_scores(adapter, prompts, [0, 1], steps=2, num_inference_steps=8)]
    assert scores[1] == 0.0 and scores[3] == 0.0 and scores[0] > 0 and scores[2] > 0
    drop = token_attribution(adapter, "a x b", [0, 1], method="drop", steps=2, num_inference_steps=8)
    assert drop.top(1)[0][0] == "x"


def test_adapter_for_the_tiny_generator(tmp_path: Path) -> None:
    from radio.replication.generators import load_generator

    folder = _tiny().save(tmp_path / "tiny", extra={"step": 0})
    adapter = noise_difference_model(load_generator("tiny", folder, device="cpu"))
    assert isinstance(adapter, TinyNoiseDifference) and adapter.sample_shape == (3, 16, 16)
    with pytest.raises(TypeError, match="no noise-difference adapter"):
        noise_difference_model(object())
    with pytest.raises(ValueError, match="steps"):
        noise_differences(adapter, ["a"], [0], steps=11, num_inference_steps=10)
