"""Corpus access: Parquet, JSONL and `datasets` folders, relative and absolute paths, extra columns, and errors
that name the file, the column or the missing images."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from radio.replication.corpus import load_corpus


def _write_images(folder, n, size=32):
    (folder / "img").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = []
    for i in range(n):
        array = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
        Image.fromarray(array).save(folder / "img" / f"{i}.png")
        arrays.append(array)
    return arrays


def test_parquet_jsonl_and_datasets_agree(tmp_path):
    arrays = _write_images(tmp_path, 3)
    rows = [
        {"caption": f"a photo {i}", "image_path": f"img/{i}.png", "embedding": [1.0, float(i)], "likes": i}
        for i in range(3)
    ]
    rows[2]["image_path"] = str(tmp_path / "img" / "2.png")  # absolute paths work too
    pd.DataFrame(rows).to_parquet(tmp_path / "metadata.parquet")
    (tmp_path / "table.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    from datasets import Dataset

    dataset_dir = tmp_path / "hf"
    Dataset.from_list(
        [{**r, "image_path": str(tmp_path / "img" / f"{i}.png")} for i, r in enumerate(rows)]
    ).save_to_disk(str(dataset_dir))
    for source in (tmp_path, tmp_path / "table.jsonl", dataset_dir):
        corpus = load_corpus(source)
        assert corpus.captions == ["a photo 0", "a photo 1", "a photo 2"]
        assert corpus.extra_columns == ["likes"]
        images = corpus.load_images()
        assert images.dtype == np.uint8 and images.shape == (3, 32, 32, 3)
        np.testing.assert_array_equal(images[1], arrays[1])
        embeddings = corpus.embeddings([1])
        np.testing.assert_allclose(embeddings, [[1 / np.sqrt(2), 1 / np.sqrt(2)]], rtol=1e-6)
    resized = load_corpus(tmp_path).load_images([0, 2], size=16)
    assert resized.shape == (2, 16, 16, 3)
    sub = load_corpus(tmp_path).subset([2, 0])
    assert sub.captions == ["a photo 2", "a photo 0"] and sub.frame["source_index"].tolist() == [2, 0]


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="metadata table not found"):
        load_corpus(tmp_path / "nope.parquet")
    with pytest.raises(FileNotFoundError, match="no metadata table"):
        load_corpus(tmp_path)
    pd.DataFrame({"text": ["x"], "image_path": ["a.png"]}).to_parquet(tmp_path / "nocap.parquet")
    with pytest.raises(ValueError, match=r"nocap.parquet: column 'caption' absent"):
        load_corpus(tmp_path / "nocap.parquet")
    pd.DataFrame({"caption": [], "image_path": []}).to_parquet(tmp_path / "empty.parquet")
    with pytest.raises(ValueError, match="empty corpus"):
        load_corpus(tmp_path / "empty.parquet")
    pd.DataFrame({"caption": [f"c{i}" for i in range(8)], "image_path": [f"m{i}.png" for i in range(8)]}).to_parquet(
        tmp_path / "missing.parquet"
    )
    with pytest.raises(FileNotFoundError, match=r"8 image file\(s\) missing: .*m0.png.*and 3 more"):
        load_corpus(tmp_path / "missing.parquet")
    corpus = load_corpus(tmp_path / "missing.parquet", check_images=False)  # checked again when loading
    with pytest.raises(FileNotFoundError, match=r"m3\.png"):
        corpus.load_images([3])
    with pytest.raises(ValueError, match="no 'embedding' column"):
        corpus.embeddings()
    (tmp_path / "bad.csv").write_text("caption,image_path\n")
    with pytest.raises(ValueError, match="unknown table format"):
        load_corpus(tmp_path / "bad.csv")


def test_synthetic_corpus_loads(small_corpus_dir):
    corpus = load_corpus(small_corpus_dir)
    assert {"group", "has_object", "artist"} <= set(corpus.extra_columns)
    assert corpus.load_images([0, 1]).shape == (2, 32, 32, 3)
