"""Algorithm Distillation (Laskin et al. 2022): in-context RL on Dark Room learning histories.

- `dark_room`: Dark Room and Dark Key-to-Door, their task splits and the shortest-path expert.
- `histories`: the source algorithm, learning histories as datasets, across-episode windows.
- `config`: `ADConfig` and its presets.
- `experiment`: collect and train; `in_context`: the in-context loop on the KV cache;
  `evaluate`: the held-out curves and the figure; `python -m
  gato.experiments.algorithm_distillation {collect,train,evaluate,all}` runs them.
"""
