"""Text splits from the corpus, and loading `text` rows from folders and Parquet files."""

from __future__ import annotations

import datasets
import pytest

from gato.data.corpora import text as text_data

PARAGRAPHS = [f"Paragraph number {i} says something about item {i * 7 % 13}." for i in range(200)]


@pytest.fixture()
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(PARAGRAPHS) + "\n", encoding="utf-8")
    return path


def test_split_is_deterministic_disjoint_and_complete(corpus, tmp_path):
    a = text_data.build_text_dataset(corpus, tmp_path / "a", validation_fraction=0.1, seed=0)
    b = text_data.build_text_dataset(corpus, tmp_path / "b", validation_fraction=0.1, seed=0)
    c = text_data.build_text_dataset(corpus, tmp_path / "c", validation_fraction=0.1, seed=1)
    train, validation = list(a["train"]["text"]), list(a["validation"]["text"])
    assert len(validation) == 20 and len(train) == 180
    assert not set(train) & set(validation)
    assert sorted(train + validation) == sorted(PARAGRAPHS)
    assert train == [p for p in PARAGRAPHS if p in set(train)]  # corpus order kept
    assert list(b["validation"]["text"]) == validation
    assert list(c["validation"]["text"]) != validation


def test_load_texts_from_folder_and_parquet(corpus, tmp_path):
    text_data.build_text_dataset(corpus, tmp_path / "ds", validation_fraction=0.1)
    loaded = text_data.load_texts(tmp_path / "ds", "validation")
    assert loaded.column_names == ["text"] and len(loaded) == 20
    parquet = tmp_path / "pq"
    parquet.mkdir()
    loaded.to_parquet(str(parquet / "validation-00000-of-00001.parquet"))
    again = text_data.load_texts(parquet, "validation")
    assert list(again["text"]) == list(loaded["text"])
    batches = list(text_data.iter_texts(again, batch_size=7))
    assert [len(b) for b in batches] == [7, 7, 6]
    assert sum(batches, []) == list(loaded["text"])


def test_bad_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match="gato.data.corpora.text_corpus"):
        text_data.build_text_dataset(tmp_path / "missing.txt", tmp_path / "out")
    datasets.Dataset.from_dict({"content": ["a"]}).save_to_disk(str(tmp_path / "nocol"))
    with pytest.raises(ValueError, match=r"missing required columns \['text'\]"):
        text_data.load_texts(tmp_path / "nocol", "train")
    datasets.Dataset.from_dict({"text": ["fine", None]}).save_to_disk(str(tmp_path / "none"))
    with pytest.raises(ValueError, match="fixture row 1: `text` must be a string"):
        list(text_data.iter_texts(text_data.load_texts(tmp_path / "none"), "fixture"))


def test_cli(corpus, tmp_path, capsys):
    text_data.main(["--corpus", str(corpus), "--out", str(tmp_path / "cli")])
    assert "train 198, validation 2" in capsys.readouterr().out
