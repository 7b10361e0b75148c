"""The tiny text-to-image model: word-level tokenizer, small CLIP text encoder and a pixel-space conditional UNet.

A checkpoint is one self-contained folder:

    <checkpoint>/
      t2i_config.json     TinyT2IConfig as JSON, plus the training step and loss at save time
      tokenizer/          PreTrainedTokenizerFast (word-level, built from the training captions)
      text_encoder/       CLIPTextModel (config.json + model.safetensors)
      unet/               UNet2DConditionModel (config.json + diffusion_pytorch_model.safetensors)
      scheduler/          DDPMScheduler config (the noise schedule used in training; DDIM samples from it)

`t2i_config.json` is written last, so a folder without it is an incomplete save.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from radio.replication.t2i.config import TinyT2IConfig

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
CONFIG_FILE = "t2i_config.json"
# Same split as the tokenizer's Whitespace pre-tokenizer (\w+|[^\w\s]+), so the vocabulary is counted on the
# very pieces that will be looked up.
_WORDS = re.compile(r"\w+|[^\w\s]+")


class CheckpointError(ValueError):
    """A tiny text-to-image checkpoint folder is missing, incomplete or not one."""


def build_tokenizer(captions: Sequence[str], config: TinyT2IConfig) -> Any:
    """A word-level tokenizer over the lowercased words of `captions` (most frequent first, ties alphabetical).

    Words seen fewer than `vocab_min_frequency` times, or beyond `max_vocab_size`, map to `<unk>`. Encoding adds
    `<s>` ... `</s>` like CLIP's tokenizer; padding uses `<pad>`. Word level keeps an artist's name or a title word
    one token, which is what word-level replication is about; prompts with unseen words still encode (as unk).
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    counts = Counter(word for caption in captions for word in _WORDS.findall(caption.lower()))
    specials = [PAD, BOS, EOS, UNK]
    kept = sorted(
        (w for w, c in counts.items() if c >= config.vocab_min_frequency and w not in specials),
        key=lambda w: (-counts[w], w),
    )[: config.max_vocab_size - len(specials)]
    vocab = {token: i for i, token in enumerate([*specials, *kept])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    core.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A {EOS}", special_tokens=[(BOS, vocab[BOS]), (EOS, vocab[EOS])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        model_max_length=config.max_caption_tokens,
    )


def build_text_encoder(config: TinyT2IConfig, tokenizer: Any) -> Any:
    """A freshly initialised small `CLIPTextModel` sized by `config`, with the tokenizer's special ids."""
    from transformers import CLIPTextConfig, CLIPTextModel

    text_config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.text_hidden_size,
        intermediate_size=config.text_intermediate_size,
        num_hidden_layers=config.text_layers,
        num_attention_heads=config.text_heads,
        max_position_embeddings=config.max_caption_tokens,
        projection_dim=config.text_hidden_size,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return CLIPTextModel(text_config)


def build_unet(config: TinyT2IConfig) -> Any:
    """A freshly initialised pixel-space `UNet2DConditionModel` (RGB in and out) sized by `config`."""
    from diffusers import UNet2DConditionModel

    levels = range(len(config.block_out_channels))
    down = tuple("CrossAttnDownBlock2D" if lv in config.attention_levels else "DownBlock2D" for lv in levels)
    up = tuple("CrossAttnUpBlock2D" if lv in config.attention_levels else "UpBlock2D" for lv in reversed(list(levels)))
    return UNet2DConditionModel(
        sample_size=config.image_size,
        in_channels=3,
        out_channels=3,
        block_out_channels=config.block_out_channels,
        down_block_types=down,
        up_block_types=up,
        mid_block_type="UNetMidBlock2DCrossAttn",
        layers_per_block=config.layers_per_block,
        cross_attention_dim=config.text_hidden_size,
        attention_head_dim=config.attention_head_dim,
        norm_num_groups=config.norm_num_groups,
        addition_embed_type="text" if config.pooled_text_conditioning else None,
        addition_embed_type_num_heads=config.pooled_text_heads,
    )


def set_attention_kernel(unet: Any, kernel: str) -> None:
    """Run the UNet's attention blocks on `kernel` ("math" or "sdpa", see `TinyT2IConfig.attention_kernel`)."""
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    unet.set_attn_processor(AttnProcessor() if kernel == "math" else AttnProcessor2_0())


def build_noise_scheduler(config: TinyT2IConfig) -> Any:
    """The DDPM training noise schedule and prediction target; DDIM sampling is built from its config."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(
        num_train_timesteps=config.num_train_timesteps,
        beta_schedule=config.beta_schedule,
        prediction_type=config.prediction_type,
        clip_sample=True,
    )


@dataclass
class TinyT2I:
    """The parts of one tiny text-to-image model, in memory."""

    config: TinyT2IConfig
    tokenizer: Any
    text_encoder: Any
    unet: Any
    noise_scheduler: Any

    @classmethod
    def create(cls, config: TinyT2IConfig, captions: Sequence[str], seed: int) -> TinyT2I:
        """A freshly initialised model whose vocabulary comes from `captions`; weights drawn from `seed`."""
        tokenizer = build_tokenizer(captions, config)
        # Initialisation draws from torch's global generator: fork it so the caller's RNG state is untouched.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            text_encoder = build_text_encoder(config, tokenizer)
            unet = build_unet(config)
        set_attention_kernel(unet, config.attention_kernel)
        return cls(config, tokenizer, text_encoder, unet, build_noise_scheduler(config))

    def tokenize(self, captions: Sequence[str]) -> torch.Tensor:
        """Token ids (len(captions), max_caption_tokens), padded and truncated like CLIP's 77-token window."""
        enc = self.tokenizer(
            list(captions),
            padding="max_length",
            truncation=True,
            max_length=self.config.max_caption_tokens,
            return_tensors="pt",
        )
        return enc["input_ids"]

    def encode_text(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Cross-attention context: the text encoder's last hidden states (batch, tokens, text_hidden_size)."""
        return self.text_encoder(input_ids=input_ids).last_hidden_state

    def parameter_count(self) -> dict[str, int]:
        """Number of parameters of the UNet and of the text encoder."""
        return {
            "unet": sum(p.numel() for p in self.unet.parameters()),
            "text_encoder": sum(p.numel() for p in self.text_encoder.parameters()),
        }

    def to(self, device: str | torch.device) -> TinyT2I:
        """Move both networks to `device` (in place); returns self."""
        self.unet.to(device)
        self.text_encoder.to(device)
        return self

    def save(self, folder: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Write the checkpoint folder (layout in the module docstring); `extra` goes into t2i_config.json."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save_pretrained(str(folder / "tokenizer"))
        self.text_encoder.save_pretrained(str(folder / "text_encoder"))
        self.unet.save_pretrained(str(folder / "unet"))
        self.noise_scheduler.save_pretrained(str(folder / "scheduler"))
        meta = {"format": "radio-tiny-t2i", "version": 1, "config": self.config.to_dict(), **(extra or {})}
        # Written last: its presence marks a complete checkpoint.
        tmp = folder / f"{CONFIG_FILE}.tmp"
        tmp.write_text(json.dumps(meta, indent=2, sort_keys=True))
        tmp.replace(folder / CONFIG_FILE)
        return folder

    @classmethod
    def load(cls, folder: str | Path, device: str | torch.device = "cpu") -> TinyT2I:
        """Load a checkpoint folder written by `save` (local files only), on `device`, in eval mode."""
        from diffusers import DDPMScheduler, UNet2DConditionModel
        from transformers import CLIPTextModel, PreTrainedTokenizerFast

        folder = Path(folder)
        meta = read_checkpoint_meta(folder)
        config = TinyT2IConfig.from_dict(meta["config"])
        tokenizer = PreTrainedTokenizerFast.from_pretrained(str(folder / "tokenizer"), local_files_only=True)
        text_encoder = CLIPTextModel.from_pretrained(str(folder / "text_encoder"), local_files_only=True)
        unet = UNet2DConditionModel.from_pretrained(str(folder / "unet"), local_files_only=True)
        set_attention_kernel(unet, config.attention_kernel)
        scheduler = DDPMScheduler.from_pretrained(str(folder / "scheduler"), local_files_only=True)
        model = cls(config, tokenizer, text_encoder.eval(), unet.eval(), scheduler)
        return model.to(device)


def read_checkpoint_meta(folder: str | Path) -> dict[str, Any]:
    """The JSON metadata of a complete checkpoint folder; CheckpointError names the folder when it is not one."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: tiny text-to-image checkpoint folder not found")
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{folder}: no {CONFIG_FILE} (not a tiny text-to-image checkpoint, or a cut-short save)")
    meta = json.loads(path.read_text())
    if meta.get("format") != "radio-tiny-t2i":
        raise CheckpointError(f"{path}: format {meta.get('format')!r} is not 'radio-tiny-t2i'")
    return meta
