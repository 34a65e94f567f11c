"""Few-shot transfer (Gato, section 5.2): a generalist pretrained on many tasks of a family,
fine-tuned on held-out tasks of the family with a few demonstrations, against the same model
trained from scratch on the same demonstrations with the same budget. `experiment.py` holds the
whole protocol; docs/transfer.md what was measured and what was not."""
