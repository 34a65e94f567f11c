"""Tokens: the unified tokenizer, tokenized sequences and batches, windows at timestep boundaries,
and the SentencePiece text model."""
