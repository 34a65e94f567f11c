"""Training: the `accelerate` trainer and the main job's pipeline (build, train, evaluate)."""
