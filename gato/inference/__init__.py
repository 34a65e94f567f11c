"""Decoding with a KV cache: the cache, the fast eager step and the static (CUDA-graph) step."""
