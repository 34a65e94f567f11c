"""Corpora that are not control episodes: procedural captioning and VQA scenes, English text."""
