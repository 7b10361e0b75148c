"""Builders of the `sd14` path's inputs without weights: a random tiny `StableDiffusionPipeline`, a random tiny
`CLIPModel` folder (text embedder, zero-shot detector), an SSCD-like TorchScript descriptor, a LAION-style metadata
table with its images, a labelled validation table, and a preset derived from `replication-sd14.yaml` that points
at them (every other setting of the real preset kept, sizes shrunk for CPU).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[2]
SD14_PRESET = ROOT / "sweeps" / "audits" / "replication" / "presets" / "sd14.yaml"
SAMPLES, BLOCK = 4, 2  # generations per prompt, seeds per evaluation chunk
SAMPLER_STEPS = 4


def build_random_clip(folder: Path, seed: int = 0) -> Path:
    """A random tiny transformers `CLIPModel` + `CLIPProcessor` folder, with the byte-level CLIP tokenizer of the
    random Stable Diffusion pipeline (every caption tokenises, digits and punctuation included)."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    from radio.replication.generators.random_sd import BOS, EOS, write_clip_tokenizer_files

    write_clip_tokenizer_files(folder)
    tokenizer = CLIPTokenizer(
        str(folder / "vocab.json"), str(folder / "merges.txt"), bos_token=BOS, eos_token=EOS, pad_token=EOS
    )
    small = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2}
    n = len(tokenizer)
    text = {**small, "vocab_size": n, "max_position_embeddings": 77}
    text |= {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
    text |= {"pad_token_id": tokenizer.pad_token_id}
    config = CLIPConfig(text_config=text, vision_config={**small, "image_size": 32, "patch_size": 8}, projection_dim=8)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CLIPModel(config)
    model.save_pretrained(folder)
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def build_sscd_like(path: Path) -> Path:
    """A TorchScript copy descriptor with SSCD's interface (normalised (n, 3, H, W) in, (n, d) out): 8x8 average
    pooling minus each image's channel mean, the pixel embedder's recipe, so that planted copies cluster."""
    import torch

    class Descriptor(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            pooled = torch.nn.functional.adaptive_avg_pool2d(x, 8)
            pooled = pooled - pooled.mean(dim=(2, 3), keepdim=True)
            return pooled.flatten(1)

    with warnings.catch_warnings():
        # torch deprecates TorchScript, but SSCD's published descriptors are TorchScript files.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(Descriptor()).save(str(path))
    return path


def _painting(rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """A random blocky image: 4x4 coloured blocks upscaled (distinct images have low 8x8-pooled similarity)."""
    blocks = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    return np.kron(blocks, np.ones((size // 4, size // 4, 1), dtype=np.uint8))


def _copy(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A light augmentation (a little noise), as LAION's many re-uploads of one print."""
    noisy = image.astype(np.int16) + rng.integers(-8, 9, size=image.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def _with_flag(image: np.ndarray) -> np.ndarray:
    out = image.copy()
    out[2:8, 2:12] = (200, 30, 30)
    out[4:6, 2:12] = (240, 240, 240)
    return out


def build_metadata(folder: Path, seed: int = 0) -> tuple[Path, Path]:
    """A LAION-style Parquet table (caption, image_path relative to the table, a `group` column kept as extra) and
    a labelled validation table (image_path, has_object); PNG images written beside them. Returns both paths.

    "van gogh" rows: a catch-all group of one print (the largest cluster, dropped as the paper drops it), the
    planted "Almond Blossom" print, a sunflower print and one-off works; "astronaut" rows, 30% with a flag no
    caption names; space scenes and unrelated photos.
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    images_dir = folder / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []

    def add(image: np.ndarray, directory: Path = images_dir) -> str:
        name = f"{len(list(directory.iterdir())):05d}.png"
        Image.fromarray(image).save(directory / name)
        return str((directory / name).relative_to(folder))

    prints = {"starry": _painting(rng), "almond": _painting(rng), "sunflower": _painting(rng)}
    groups = [
        ("starry", 24, "The Starry Night by Vincent van Gogh, poster print {i}"),
        ("almond", 16, "Almond Blossom, Vincent van Gogh, blossoming branches canvas print {i}"),
        ("sunflower", 8, "Sunflowers by van Gogh art print {i}"),
    ]
    for group, count, template in groups:
        for i in range(count):
            image = _copy(prints[group], rng)
            rows.append({"caption": template.format(i=i), "image_path": add(image), "group": group})
    for i in range(10):
        rows.append({"caption": f"van gogh style landscape {i}", "image_path": add(_painting(rng)), "group": ""})
    for i in range(20):
        flag = i % 10 < 3
        image = _with_flag(_painting(rng)) if flag else _painting(rng)
        rows.append({"caption": f"an astronaut on the moon {i}", "image_path": add(image)})
        rows[-1]["group"] = "astronaut-flag" if flag else "astronaut"
    for i in range(10):
        rows.append({"caption": f"a cat on a sofa {i}", "image_path": add(_painting(rng)), "group": "generic"})
    table = folder / "metadata.parquet"
    pd.DataFrame(rows).to_parquet(table)

    validation_dir = folder / "validation"
    validation_dir.mkdir()
    labelled = []
    for i in range(12):
        flag = i % 2 == 0
        image = _with_flag(_painting(rng)) if flag else _painting(rng)
        path = add(image, directory=validation_dir)
        labelled.append({"caption": "validation", "image_path": path, "has_object": flag})
    validation = folder / "flag-validation.parquet"
    pd.DataFrame(labelled).to_parquet(validation)
    return table, validation


def derive_sd14_preset(out: Path, paths: dict[str, Path], *, guidance: list[float] | None = None) -> Path:
    """`replication-sd14.yaml` with its local paths replaced by `paths` (pipeline, clip, sscd, metadata,
    validation), CPU devices and float32, and sizes shrunk (samples, sampler steps, cluster minimum, image size).
    Every other setting (target, pull words, prompts, detector, rules) stays the real preset's."""
    preset = yaml.safe_load(SD14_PRESET.read_text())
    preset["name"] = "replication-sd14-random"
    preset["grid"]["base"]["sampler_steps"] = SAMPLER_STEPS
    if guidance is not None:
        preset["grid"]["vary"]["guidance"] = guidance
    preset["corpus"]["metadata"] = str(paths["metadata"])
    preset["model"]["path"] = str(paths["pipeline"])
    preset["model"]["options"] = {**preset["model"]["options"], "dtype": "float32"}  # no float16 on CPU
    analysis = preset["analysis"]
    analysis["tokenizer"] = str(paths["pipeline"] / "tokenizer")
    analysis["embedder_args"] = {"path": str(paths["sscd"]), "device": "cpu", "size": 32}
    analysis["image_size"] = 32
    analysis["min_size"] = 5
    analysis["detector_args"] = {**analysis["detector_args"], "path": str(paths["clip"]), "device": "cpu"}
    analysis["validation"] = str(paths["validation"])
    analysis["validation_size"] = 12
    analysis["text_embedder_args"] = {"path": str(paths["clip"]), "device": "cpu"}
    preset["generate"] = {"samples": SAMPLES, "block": BLOCK, "batch_size": BLOCK, "grid_images": 2, "device": "cpu"}
    preset["resources"] = {
        "corpus": {"cpu": 1},
        "model": {"cpu": 1},
        "analysis": {"cpu": 1},
        "actor": {"cpu": 0.5},
        "actors": 2,
    }
    out.write_text(yaml.safe_dump(preset, sort_keys=False))
    return out


def build_all(folder: Path) -> dict[str, Path]:
    """Every input of the derived preset under `folder`; returns their paths (and `preset`)."""
    from radio.replication.generators.random_sd import build_random_sd_pipeline

    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "pipeline": build_random_sd_pipeline(folder / "sd", seed=0, image_size=16),
        "clip": build_random_clip(folder / "clip"),
        "sscd": build_sscd_like(folder / "sscd.torchscript.pt"),
    }
    paths["metadata"], paths["validation"] = build_metadata(folder / "laion")
    return paths
