"""`radio detect-text`: JSON output on good input, one clear error and a non-zero exit on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from radio import Watermark, WatermarkConfig
from radio.cli import main
from radio.keys import KEY_ENV_VAR


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def _watermarked_records(key: bytes, n: int = 20, length: int = 60) -> list[str]:
    """Token streams sampled from the green lists (a perfectly watermarked source)."""
    wm = Watermark(WatermarkConfig("kgw", k=2), key=key, vocab_size=500)
    rng = np.random.default_rng(0)
    records = []
    for _ in range(n):
        tokens = rng.integers(0, 500, 2).tolist()
        while len(tokens) < length:
            green = wm.green_mask(torch.tensor([tokens[-2:]]))[0].nonzero().flatten().tolist()
            tokens.append(int(rng.choice(green)))
        records.append(json.dumps({"token_ids": tokens[2:], "prompt_ids": tokens[:2]}))
    return records


def test_detects_with_key_file_and_env(tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch) -> None:
    key_file = _write(tmp_path / "key", ["s3cret"])
    data = _write(tmp_path / "in.jsonl", _watermarked_records(b"s3cret"))
    code = main(
        ["detect-text", str(data), "--key-file", str(key_file), "--vocab-size", "500", "--prompt-field", "prompt_ids"]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["log10_pvalue"] < -50 and out["n_seen"] == 20 * 58
    assert out["n_seen"] >= out["n_eligible"] >= out["n_scored"] > 0
    assert "s3cret" not in json.dumps(out)
    monkeypatch.setenv(KEY_ENV_VAR, "another-key")
    assert main(["detect-text", str(data), "--vocab-size", "500"]) == 0
    assert json.loads(capsys.readouterr().out)["log10_pvalue"] > -3


@pytest.mark.parametrize(
    ("lines", "extra", "message"),
    [
        (['{"token_ids": [1, 2, 3]}', "{not json"], [], "in.jsonl:2: malformed JSON"),
        (['{"token_ids": [1, 2, 999]}'], [], "token id 999 outside"),
        (['{"tokens": [1, 2]}'], [], "missing field 'token_ids'"),
        ([""], [], "empty input"),
        (['{"token_ids": [1, 2, 3]}'], ["--scheme", "nope"], "scheme"),
        (['{"token_ids": [1, 2, 3]}'], ["--gamma", "1.5"], "gamma"),
        (['{"token_ids": [1, 2, 3]}'], ["--k", "-1"], "k"),
        (['{"text": "hello"}'], ["--field", "text"], "pass --tokenizer"),
    ],
)
def test_bad_input_exits_nonzero_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch, lines: list[str], extra: list[str], message: str
) -> None:
    monkeypatch.setenv(KEY_ENV_VAR, "k")
    data = _write(tmp_path / "in.jsonl", lines)
    assert main(["detect-text", str(data), "--vocab-size", "500", *extra]) != 0
    assert message in capsys.readouterr().err


def test_missing_key_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch) -> None:
    monkeypatch.delenv(KEY_ENV_VAR, raising=False)
    data = _write(tmp_path / "in.jsonl", ['{"token_ids": [1, 2, 3]}'])
    assert main(["detect-text", str(data), "--vocab-size", "500"]) != 0
    assert KEY_ENV_VAR in capsys.readouterr().err
    assert main(["detect-text", str(data), "--vocab-size", "500", "--key-file", str(tmp_path / "nope")]) != 0
    assert "not found" in capsys.readouterr().err


def test_key_is_not_accepted_on_the_command_line(tmp_path: Path) -> None:
    data = _write(tmp_path / "in.jsonl", ['{"token_ids": [1, 2, 3]}'])
    with pytest.raises(SystemExit):
        main(["detect-text", str(data), "--vocab-size", "500", "--key", "literal"])
