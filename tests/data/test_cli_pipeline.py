"""`radio prepare / generate / mix`: JSON on stdout, and one-line errors naming the field or file (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import KEY, Generated

from radio.cli import main


def write_config(tmp_path: Path, generated: Generated, **changes: object) -> Path:
    config: dict = {
        "cache_root": str(generated.root),
        "prepare": {
            "preset": "tiny-0.5m",
            "corpus": {"max_docs": 150},
            "tokenizer": {"vocab_size": 512},
            "pretrain": {"steps": 6, "batch_size": 4, "block_size": 32, "warmup_steps": 2, "eval_batches": 1},
            "workers": 1,
        },
        "generate": {
            "n_watermarked": 48,
            "n_plain": 24,
            "prompt_tokens": 12,
            "max_new_tokens": 16,
            "batch_size": 24,
            "min_answer_tokens": 1,
        },
        "mix": {"d": 1.0, "train_size": 16, "known_size": 4, "heldout_size": 8},
        "rhos": [0.0, 0.5],
        "finetune": {"left": "to its own command"},
    }
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = config
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    path = tmp_path / "radio.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "key"
    path.write_bytes(KEY + b"\n")
    return path


def test_pipeline_commands_print_their_folders(generated: Generated, tmp_path: Path, key_file: Path, capsys) -> None:
    config = write_config(tmp_path, generated)
    assert main(["prepare", "--config", str(config)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["cached"] and Path(out["base_a"]) == generated.prepared.base_a_dir
    assert main(["generate", "--config", str(config), "--key-file", str(key_file)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert Path(out["watermarked"]) == generated.watermarked.path and out["cached"]
    assert main(["mix", "--config", str(config), "--key-file", str(key_file)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["mixes"]) == {"0.0", "0.5"}
    assert out["counts"]["0.5"]["train_watermarked"] == 8
    for folder in out["mixes"].values():
        assert all((Path(folder) / name / "dataset_info.json").is_file() for name in ("train", "known", "heldout"))


@pytest.mark.parametrize(
    "changes,command,message",
    [
        ({"rhos": [0.0, 1.5]}, "mix", "rhos[1]: must be in [0, 1]"),
        ({"mix__rho": -0.5, "rhos": []}, "mix", "mix.rho: must be in [0, 1]"),
        ({"prepare__presett": "tiny-1m"}, "prepare", "unknown key(s) ['presett']"),
        ({"prepare__preset": "huge"}, "prepare", "prepare.preset: unknown preset"),
        ({"prepare__base_a": "/nonexistent/a", "prepare__base_b": "/nonexistent/b"}, "prepare", "prepare.base_a"),
        ({"prepare__corpus__source": "/nonexistent/corpus.txt"}, "prepare", "corpus.source /nonexistent/corpus.txt"),
        ({"generate__n_watermarked": 100_000}, "generate", "generate.n_watermarked: needs prompts"),
        ({"generate__n_plain": 100_000}, "generate", "generate.n_plain: needs prompts 48..100048"),
        ({"model": "/nonexistent/model"}, "generate", "model /nonexistent/model"),
        ({"watermarked_set": "/nonexistent/wm", "plain_set": "/nonexistent/p"}, "mix", "watermarked_set /nonexist"),
    ],
)
def test_bad_input_is_one_clear_line(
    generated: Generated, tmp_path: Path, key_file: Path, capsys, changes: dict, command: str, message: str
) -> None:
    config = write_config(tmp_path, generated, **changes)
    args = [command, "--config", str(config)] + (["--key-file", str(key_file)] if command != "prepare" else [])
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"radio {command}: error: ") and message in err


def test_empty_corpus_and_missing_key(generated: Generated, tmp_path: Path, capsys, monkeypatch) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    config = write_config(tmp_path, generated, prepare__corpus__source=str(empty))
    assert main(["prepare", "--config", str(config)]) == 2
    assert "corpus.source" in capsys.readouterr().err
    assert not list((generated.root / "corpus").glob(".tmp*"))
    monkeypatch.delenv("RADIO_WATERMARK_KEY", raising=False)
    assert main(["generate", "--config", str(write_config(tmp_path, generated))]) == 2
    assert "--key-file" in capsys.readouterr().err
    assert main(["prepare", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml: config file not found" in capsys.readouterr().err
