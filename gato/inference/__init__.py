"""Decoding with a KV cache: the cache (`cache`), the fast eager step (`eager`), the static
CUDA-graph step (`static`), and picking tokens from logits (`sampling`)."""
