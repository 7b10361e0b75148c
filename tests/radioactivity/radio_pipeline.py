"""The tiny pipeline behind the radioactivity tests: bases, watermarked and plain data, mixes, fine-tuned B.

Built with the library's own stages (radio.data, radio.train) at the smallest sizes that still learn: a 512-entry
byte-level BPE tokenizer, the tiny-0.5m preset pre-trained for 300 steps (A's text is then low-entropy enough for B
to pick up its watermark bias), 32-token answers, a strong KGW watermark (gamma 0.25, delta 4).

- main (k = 1): mixes rho = 1 (d = 1 and d = 0) and rho = 0 of 240 training records, known sets of 100, held-out
  sets of 150; B fine-tuned 12 epochs on each training set.
- Aaronson (k = 2): A's answers watermarked with the Aaronson-Kirchner scheme, rho = 1 on 120 records, all known,
  B fine-tuned 24 epochs (the same pipeline, the other scheme). Aaronson sampling is deterministic given the window:
  at k = 1 most answers fall into the same loops and are dropped as near-duplicates, so k = 2.
- phi (k = 2): rho = 1 on 120 records, all of them known (Alice knows every watermarked record B trained on); B
  fine-tuned 24 epochs, so that it partly memorises them. With k = 2 many windows of B's answers were never in its
  training data; that is where phi helps (with k = 1 every window is a single token, all of them seen).

Everything runs on CPU with one torch thread: on a 2-core machine shared with other jobs that is several times
faster than two for these tiny models.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from radio.data import CorpusConfig, GenerateConfig, MixConfig, PrepareConfig, TokenizerConfig, generate_sets, make_mix
from radio.data import generate as generate_stage
from radio.data import prepare as prepare_stage
from radio.data.pipeline import default_prompts
from radio.models import PretrainConfig
from radio.train import FinetuneConfig, finetune_stage
from radio.watermark import WatermarkConfig

KEY = b"radioactivity-test-key-4b1f0e9d"
GAMMA = 0.25
DELTA = 4.0
TRAIN_SIZE = 240
KNOWN_SIZE = 100
HELDOUT_SIZE = 150
PHI_TRAIN_SIZE = 120


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run with `n` intra-op threads, then restore the previous setting."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@dataclass(frozen=True)
class Pipeline:
    """Folders of the tiny pipeline run and the public watermark parameters."""

    root: Path
    base_a: Path
    base_b: Path
    mix_rho1: Path  # k=1, rho = 1, d = 1
    mix_rho1_d0: Path  # k=1, the same training set; the known set holds non-members only
    mix_rho0: Path  # k=1, rho = 0 (known / heldout are still watermarked A text)
    model_rho1: Path
    model_rho0: Path
    watermark: WatermarkConfig  # k = 1
    mix_phi: Path  # k=2, rho = 1, known = every training record
    model_phi: Path
    watermark_phi: WatermarkConfig  # k = 2
    mix_aaronson: Path  # k=1, Aaronson, rho = 1
    model_aaronson: Path
    watermark_aaronson: WatermarkConfig
    timings: dict[str, float]


def prepare_config() -> PrepareConfig:
    return PrepareConfig(
        corpus=CorpusConfig(max_docs=1500),
        tokenizer=TokenizerConfig(vocab_size=512),
        preset="tiny-0.5m",
        pretrain=PretrainConfig(steps=300, batch_size=8, block_size=32, warmup_steps=10, eval_batches=1),
    )


def generate_config(k: int, n_watermarked: int, n_plain: int, scheme: str = "kgw") -> GenerateConfig:
    return GenerateConfig(
        watermark=WatermarkConfig(scheme=scheme, k=k, gamma=GAMMA, delta=DELTA),
        n_watermarked=n_watermarked,
        n_plain=n_plain,
        prompt_tokens=8,
        max_new_tokens=32,
        batch_size=256,
        min_answer_tokens=8,
    )


def finetune_config(epochs: int) -> FinetuneConfig:
    return FinetuneConfig(
        learning_rate=3e-3,
        epochs=epochs,
        batch_size=16,
        max_seq_len=64,
        lr_schedule="constant",
        zero_stage=None,
        device="cpu",
        log_every_steps=10,
        seed=0,
    )


def build_pipeline(root: Path) -> Pipeline:
    """Run (or find in the cache under `root`) every stage of the tiny pipeline."""
    timings: dict[str, float] = {}

    def timed(name: str, fn, *args):
        start = time.perf_counter()
        out = fn(*args)
        timings[name] = round(time.perf_counter() - start, 2)
        return out

    with torch_threads(1):
        prepared = timed("prepare", prepare_stage, prepare_config(), root)
        n_wm = TRAIN_SIZE + KNOWN_SIZE + HELDOUT_SIZE + 70  # some answers are dropped as short or duplicate
        wm_set, plain_set = timed(
            "generate", generate_sets, generate_config(1, n_wm, TRAIN_SIZE + 30), prepared, KEY, root
        )
        base = MixConfig(rho=1.0, d=1.0, train_size=TRAIN_SIZE, known_size=KNOWN_SIZE, heldout_size=HELDOUT_SIZE)
        configs = {
            "rho1": base,
            "rho1_d0": dataclasses.replace(base, d=0.0),
            "rho0": dataclasses.replace(base, rho=0.0, d=0.0),
        }
        mixes = {name: make_mix(cfg, wm_set.path, plain_set.path, root).path for name, cfg in configs.items()}
        models = {
            name: timed(
                f"finetune_{name}",
                finetune_stage,
                finetune_config(12),
                prepared.base_b_dir,
                mixes[name] / "train",
                root,
            ).path
            for name in ("rho1", "rho0")
        }
        # k = 2 for the phi test: watermarked answers only (the mix needs a plain set: the k = 1 one, unused at rho 1).
        phi_cfg = generate_config(2, PHI_TRAIN_SIZE + 30, 1)
        wm_phi = timed(
            "generate_phi", generate_stage, phi_cfg, prepared.base_a_dir, KEY, root, default_prompts(prepared)
        )
        phi_mix = MixConfig(rho=1.0, d=1.0, train_size=PHI_TRAIN_SIZE, known_size=PHI_TRAIN_SIZE, heldout_size=0)
        mix_phi = make_mix(phi_mix, wm_phi.path, plain_set.path, root).path
        model_phi = timed(
            "finetune_phi", finetune_stage, finetune_config(24), prepared.base_b_dir, mix_phi / "train", root
        ).path
        # Aaronson, k = 2: watermarked answers only (the plain set of the k = 1 run is unused at rho 1).
        aar_cfg = generate_config(2, 3 * (PHI_TRAIN_SIZE + 60), 1, scheme="aaronson")
        wm_aar = timed(
            "generate_aaronson", generate_stage, aar_cfg, prepared.base_a_dir, KEY, root, default_prompts(prepared)
        )
        aar_mix = MixConfig(rho=1.0, d=1.0, train_size=PHI_TRAIN_SIZE, known_size=PHI_TRAIN_SIZE, heldout_size=60)
        mix_aaronson = make_mix(aar_mix, wm_aar.path, plain_set.path, root).path
        model_aaronson = timed(
            "finetune_aaronson", finetune_stage, finetune_config(24), prepared.base_b_dir, mix_aaronson / "train", root
        ).path
    spec = WatermarkConfig(scheme="kgw", k=1, gamma=GAMMA, delta=DELTA)
    return Pipeline(
        root=root,
        base_a=prepared.base_a_dir,
        base_b=prepared.base_b_dir,
        mix_rho1=mixes["rho1"],
        mix_rho1_d0=mixes["rho1_d0"],
        mix_rho0=mixes["rho0"],
        model_rho1=models["rho1"],
        model_rho0=models["rho0"],
        watermark=spec,
        mix_phi=mix_phi,
        model_phi=model_phi,
        watermark_phi=dataclasses.replace(spec, k=2),
        mix_aaronson=mix_aaronson,
        model_aaronson=model_aaronson,
        watermark_aaronson=dataclasses.replace(spec, scheme="aaronson", k=2),
        timings=timings,
    )
