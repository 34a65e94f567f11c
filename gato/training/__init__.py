"""Training: the `accelerate` trainer and the main job's pipeline (build, train, evaluate).

Modules: `config` (`TrainConfig`), `schedule` (learning-rate factor, parameter groups),
`trainer` (`Trainer`, `StepLog`), `model_card` (the README of a saved model), `pipeline` (the
main job). The checkpoint folder format is `gato.checkpoints`.
"""
