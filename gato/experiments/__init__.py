"""Experiments built on the toolkit: PathNet transfer and Algorithm Distillation."""
