"""The decoder-only transformer: config and presets, embeddings, blocks, masks, loss, model."""
