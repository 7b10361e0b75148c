"""A tiny randomly initialised `StableDiffusionPipeline` saved to a folder: the real `sd` code path without weights.

Every part is built from a small config (UNet, VAE, CLIP text encoder) and the `CLIPTokenizer` reads a vocabulary
written here: byte-level symbols with and without CLIP's `</w>` word-end mark, no merges, and CLIP's two special
tokens. Tests and benchmarks load the folder with `load_generator("sd", folder)` exactly as a real Stable Diffusion
folder would be loaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def _byte_symbols() -> list[str]:
    # The printable stand-in for each byte that byte-level BPE vocabularies (GPT-2, CLIP) use: printable Latin-1
    # bytes map to themselves, the others to code points from 256 up, in byte order.
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    symbols, extra = {}, 0
    for b in range(256):
        if b in printable:
            symbols[b] = chr(b)
        else:
            symbols[b] = chr(256 + extra)
            extra += 1
    return [symbols[b] for b in range(256)]


def write_clip_tokenizer_files(folder: str | Path) -> Path:
    """Write vocab.json and merges.txt of a merge-free CLIP tokenizer (514 entries) into `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    symbols = _byte_symbols()
    tokens = [*symbols, *(s + "</w>" for s in symbols), BOS, EOS]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return folder


def build_random_sd_pipeline(folder: str | Path, seed: int = 0, image_size: int = 16) -> Path:
    """Build and `save_pretrained` a random tiny Stable Diffusion pipeline (image_size x image_size RGB) in `folder`.

    The VAE halves the resolution once (latents of image_size / 2); no safety checker or feature extractor.
    """
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    if image_size % 8 != 0:
        raise ValueError(f"image_size: must be a multiple of 8, got {image_size}")
    folder = Path(folder)
    tokenizer_dir = write_clip_tokenizer_files(folder / "_tokenizer_src")
    tokenizer = CLIPTokenizer(
        str(tokenizer_dir / "vocab.json"),
        str(tokenizer_dir / "merges.txt"),
        bos_token=BOS,
        eos_token=EOS,
        pad_token=EOS,
        unk_token=EOS,
        model_max_length=77,
    )
    # Initialisation draws from torch's global generator: fork it so the caller's RNG state is untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=len(tokenizer),
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=4,
                max_position_embeddings=77,
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
        )
        unet = UNet2DConditionModel(
            sample_size=image_size // 2,
            in_channels=4,
            out_channels=4,
            block_out_channels=(32, 64),
            layers_per_block=1,
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=32,
            attention_head_dim=8,
            norm_num_groups=16,
        )
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
            up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
            block_out_channels=(16, 32),
            latent_channels=4,
            norm_num_groups=16,
            sample_size=image_size,
        )
    scheduler = DDIMScheduler(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False, steps_offset=1
    )
    pipeline = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipeline.save_pretrained(str(folder))
    return folder
