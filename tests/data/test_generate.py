"""Self-instruct generation: fields, flags, stopping, dedup, the watermark's presence, and no key on disk."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import datasets
import pytest
import torch
from conftest import KEY, Generated, tiny_generate_config

from radio.data import EmptyDatasetError, generate
from radio.data.dedup import dedup_answers
from radio.data.prompts import instruction_prompts
from radio.keys import key_fingerprint
from radio.models import load_tokenizer
from radio.watermark import Watermark, WatermarkConfig

COLUMNS = {
    "id",
    "prompt",
    "answer",
    "prompt_ids",
    "answer_ids",
    "finish_reason",
    "watermarked",
    "scheme",
    "k",
    "key_fingerprint",
}


def load(stage_path: Path) -> datasets.Dataset:
    return datasets.load_from_disk(str(stage_path / "data"))


def test_fields_and_flags(generated: Generated) -> None:
    wm, plain = load(generated.watermarked.path), load(generated.plain.path)
    assert set(wm.column_names) == COLUMNS == set(plain.column_names)
    assert len(wm) > 0 and len(plain) > 0
    assert set(wm["watermarked"]) == {True} and set(plain["watermarked"]) == {False}
    assert set(wm["scheme"]) == {"kgw"} and set(wm["k"]) == {2}
    assert set(wm["key_fingerprint"]) == {key_fingerprint(KEY)} and set(plain["key_fingerprint"]) == {""}
    # Disjoint prompts, same pool: the watermarked set answers ids [0, 48), the plain set [48, 72).
    assert max(wm["id"]) < 48 <= min(plain["id"])
    assert not set(wm["prompt"]) & set(plain["prompt"])
    tokenizer = load_tokenizer(generated.prepared.base_a_dir)
    row = wm[0]
    assert row["prompt_ids"][0] == tokenizer.bos_token_id and len(row["prompt_ids"]) == 13
    assert row["answer"] == tokenizer.decode(row["answer_ids"], skip_special_tokens=True)
    manifest = generated.watermarked.manifest
    assert manifest["key_fingerprint"] == key_fingerprint(KEY)
    assert manifest["counts"]["watermark"]["vocab_size"] == generated.prepared.vocab_size
    assert manifest["counts"]["records"] == len(wm) and manifest["counts"]["tokens_per_s"] > 0


def test_stopping_at_eos_or_length(generated: Generated) -> None:
    eos = load_tokenizer(generated.prepared.base_a_dir).eos_token_id
    for stage in (generated.watermarked, generated.plain):
        data = load(stage.path)
        for ids, reason in zip(data["answer_ids"], data["finish_reason"], strict=True):
            assert eos not in ids
            assert (len(ids) == 16) if reason == "length" else (len(ids) < 16)


def test_no_key_anywhere_on_disk(generated: Generated) -> None:
    needles = [KEY, KEY.hex().encode(), KEY.decode().encode("utf-16-le")]
    files = [p for p in generated.root.rglob("*") if p.is_file()]
    assert files
    for path in files:
        blob = path.read_bytes()
        assert not any(needle in blob for needle in needles), path


def test_the_watermark_is_in_the_watermarked_set_only(generated: Generated) -> None:
    spec = generated.watermarked.manifest["counts"]["watermark"]
    wm = Watermark(
        WatermarkConfig(spec["scheme"], k=spec["k"], gamma=spec["gamma"], delta=spec["delta"]),
        key=KEY,
        vocab_size=spec["vocab_size"],
    )

    def green_fraction(stage_path: Path) -> float:
        windows, tokens = [], []
        data = load(stage_path)
        for prompt, answer in zip(data["prompt_ids"], data["answer_ids"], strict=True):
            seq = prompt + answer
            for t in range(len(prompt), len(seq)):
                windows.append(seq[t - 2 : t])
                tokens.append(seq[t])
        return float(wm.score_pairs(torch.tensor(windows), torch.tensor(tokens)).mean())

    # delta=3 on a nearly untrained model: most sampled tokens are green; plain text sits near gamma=0.25.
    assert green_fraction(generated.watermarked.path) > 0.5
    assert green_fraction(generated.plain.path) < 0.4


def test_generation_is_cached_and_keyed(generated: Generated) -> None:
    prompts = generated.prepared.corpus_dir / "heldout"
    again = generate(tiny_generate_config(), generated.prepared.base_a_dir, KEY, generated.root, prompts)
    assert again.cached and again.hash == generated.watermarked.hash
    manifest = json.loads((generated.plain.path / "manifest.json").read_text())
    assert "watermark" not in manifest["config"] and manifest["key_fingerprint"] is None


def test_too_few_prompts_is_a_clear_error(generated: Generated, tmp_path: Path) -> None:
    prompts = generated.prepared.corpus_dir / "heldout"
    with pytest.raises(EmptyDatasetError, match=r"generate.n_watermarked"):
        generate(tiny_generate_config(n_watermarked=100_000), generated.prepared.base_a_dir, KEY, tmp_path, prompts)
    assert not [p for p in (tmp_path / "generate").iterdir() if (p / "manifest.json").exists()]


def test_dedup_drops_short_exact_and_near_duplicates() -> None:
    base = list(range(10, 40))
    answers = [base, [1, 2], base[:], [*base[:-2], 99, 98], list(range(100, 130)), []]
    texts = ["a b c", "x", "A  B c", "different text", "other", ""]
    keep, dropped = dedup_answers(answers, texts, n=4, threshold=0.7, min_tokens=3)
    assert keep == [0, 4]
    assert dropped == {"dropped_short": 2, "dropped_duplicate": 1, "dropped_near_duplicate": 1}


def test_instruction_file_with_chat_template(generated: Generated, tmp_path: Path) -> None:
    # A "real model" stand-in: base A with a chat template, answering instructions from a JSONL file.
    model_dir = tmp_path / "chat-model"
    shutil.copytree(generated.prepared.base_a_dir, model_dir)
    (model_dir / "manifest.json").unlink()  # a plain local checkpoint, not a stage folder
    tokenizer = load_tokenizer(model_dir)
    tokenizer.chat_template = (
        "{% for m in messages %}<s>Q: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}A:{% endif %}"
    )
    tokenizer.save_pretrained(str(model_dir))
    instructions = tmp_path / "instructions.jsonl"
    lines = [json.dumps({"instruction": f"Explain what function number {i} returns."}) for i in range(8)]
    instructions.write_text("\n".join(lines) + "\n")
    cfg = tiny_generate_config(n_watermarked=5, n_plain=3, prompt_field="instruction", prompts=instructions)
    out = generate(cfg, model_dir, KEY, tmp_path / "cache")
    data = load(out.path)
    assert data[0]["prompt"].startswith("Explain what function number")
    decoded = tokenizer.decode(data[0]["prompt_ids"])
    assert decoded.startswith("<s>Q: Explain") and decoded.endswith("A:")
    plain = instruction_prompts(["Say hi."], tokenizer, "instruction")[0]
    assert tokenizer.decode(plain.ids).endswith("### Response:\n")
