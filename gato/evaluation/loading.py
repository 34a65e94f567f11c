"""What the evaluations take as a model: a folder (model, checkpoint or run) or a loaded pair."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gato.checkpoints import has_manifest, read_manifest
from gato.modeling.model import GatoModel
from gato.policy import load_pretrained, resolve_model_dir
from gato.tokens.tokenizer import GatoTokenizer

ModelLike = str | Path | tuple[GatoModel, GatoTokenizer]
"""A model, checkpoint or run folder, or an already loaded (model, tokenizer) pair."""


def load_model(
    model: ModelLike, device: Any = None, dtype: Any = None
) -> tuple[GatoModel, GatoTokenizer, Path | None]:
    """(model in eval mode, tokenizer, the model folder or None for a loaded pair)."""
    if isinstance(model, tuple):
        loaded, tokenizer = model
        return loaded.eval(), tokenizer, None
    folder = resolve_model_dir(model)
    loaded, tokenizer = load_pretrained(folder, device=device, dtype=dtype)
    return loaded, tokenizer, folder


def trained_recipe(model_dir: Path) -> Any:
    """The mixture recipe the checkpoint was trained on (a `ResolvedRecipe`), from the training
    checkpoint's manifest (`step-N/MANIFEST.json`); None when the folder does not record one or
    the recipe cannot be read here."""
    if not has_manifest(Path(model_dir).parent):
        return None
    try:
        mixture = read_manifest(Path(model_dir).parent)["config"]["mixture"]
        from gato.data.mixture import resolve_recipe

        return resolve_recipe(mixture)
    except (KeyError, TypeError, ValueError, OSError):
        return None


def trained_tasks(model_dir: Path) -> list[str] | None:
    """Control tasks of the mixture the checkpoint was trained on (`trained_recipe`'s sources
    other than the built-in captions, VQA and text); None when the folder does not record it."""
    return recipe_tasks(trained_recipe(model_dir))


def recipe_tasks(recipe: Any) -> list[str] | None:
    """A resolved recipe's sources other than the built-in captions, VQA and text (None for
    None)."""
    if recipe is None:
        return None
    from gato.data.mixture import BUILTIN_SOURCES

    return [s.name for s in recipe.sources if s.name not in BUILTIN_SOURCES]
