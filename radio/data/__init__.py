"""Corpora, tokenizer, the prepared bases, self-instruct generation with model A, and rho/d training mixes.

Public API (each step a cached stage under the cache root; see the module docstrings for the data layouts):

- `prepare(PrepareConfig, root) -> Prepared`: corpus, tokenizer, bases A and B;
- `generate(GenerateConfig, model_dir, key | None, root, prompts) -> StageOutput` (`generate_pair` for both sets);
- `make_mix(MixConfig, wm_dir, plain_dir, root) -> StageOutput` with `train`, `known`, `heldout` folders;
- `paraphrase(ParaphraseConfig, train_dir, model_dir, root) -> StageOutput`: Bob's token-level rewrite of a training
  split with his own base model (its `train` folder).
"""

from radio.data.corpus import CorpusConfig, EmptyCorpusError, build_corpus, load_split, stdlib_docstrings
from radio.data.generate import EmptyDatasetError, GenerateConfig, generate, generate_pair
from radio.data.mix import MixConfig, make_mix, plan_counts
from radio.data.paraphrase import ParaphraseConfig, paraphrase
from radio.data.pipeline import default_prompts, generate_sets, make_mixes
from radio.data.prepare import PrepareConfig, Prepared, prepare
from radio.data.tokenizer import TokenizerConfig, build_tokenizer, train_tokenizer

__all__ = [
    "CorpusConfig",
    "EmptyCorpusError",
    "EmptyDatasetError",
    "GenerateConfig",
    "MixConfig",
    "ParaphraseConfig",
    "PrepareConfig",
    "Prepared",
    "TokenizerConfig",
    "build_corpus",
    "build_tokenizer",
    "default_prompts",
    "generate",
    "generate_pair",
    "generate_sets",
    "load_split",
    "make_mix",
    "make_mixes",
    "paraphrase",
    "plan_counts",
    "prepare",
    "stdlib_docstrings",
    "train_tokenizer",
]
