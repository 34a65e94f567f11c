"""The repository layout must not break the libraries it stands beside."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_tokenizers_folder_is_assets_only():
    assert (ROOT / "tokenizers").is_dir()
    assert not (ROOT / "tokenizers" / "__init__.py").exists(), (
        "tokenizers/__init__.py would make tokenizers/ a package that shadows Hugging Face's"
    )


def test_transformers_imports_with_repository_root_on_path():
    # Run from the root with the root first on sys.path: exactly where a package called
    # `tokenizers` would shadow Hugging Face's.
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "import tokenizers; assert hasattr(tokenizers, 'Tokenizer'), tokenizers.__file__;"
        "import transformers;"
        "from transformers import PreTrainedTokenizerFast;"
        "from tokenizers import Tokenizer, models;"
        "fast = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.BPE()));"
        "print(type(fast).__name__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(ROOT)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip(), "no fast tokenizer was built"


def test_package_imports_cheaply():
    out = subprocess.run(
        [sys.executable, "-c", "import gato; print(gato.__version__)"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr


def test_import_registers_the_auto_classes(tmp_path):
    code = (
        "import sys, gato; from transformers import AutoConfig, AutoModel;"
        "cfg = gato.GatoConfig.from_preset('tiny'); cfg.num_hidden_layers = 1;"
        "gato.GatoModel(cfg).save_pretrained(sys.argv[1]);"
        "print(type(AutoModel.from_pretrained(sys.argv[1])).__name__,"
        " type(AutoConfig.from_pretrained(sys.argv[1])).__name__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "m")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["GatoModel", "GatoConfig"]
