"""Algorithm Distillation (Laskin et al., ICLR 2023) with `GatoModel` on Dark Room.

A causal transformer trained to predict the actions of a source RL algorithm across many
episodes of its learning history learns, in its context, an improvement operator: at test time on
a new task it acts, sees its rewards, and does better episode after episode with frozen weights.

Three commands, one run folder (`output_dir`):

    python -m gato.experiments.algorithm_distillation collect  --preset default --output_dir runs/ad
    python -m gato.experiments.algorithm_distillation train    --preset default --output_dir runs/ad
    python -m gato.experiments.algorithm_distillation evaluate --preset default --output_dir runs/ad

- collect: the fixed goal split; tabular Q-learning from scratch on every training goal
  (`histories_per_goal` runs of `history_episodes` episodes, each recorded in order) and
  shortest-path expert episodes on the same goals, written as datasets (`data/histories`,
  `data/expert`).
- train: `GatoModel` with the toolkit's `Trainer` on windows of `context_episodes` episodes of
  one task (`gato.experiments.algorithm_distillation.histories.HistoryWindows`): AD on the
  histories, and the expert-distillation
  baseline (ED) on the expert episodes, one model per seed in `train_seeds`
  (`models/{ad,ed}-seed{N}`).
- evaluate: on the held-out goals, every model acts in context for `eval_episodes` episodes
  (`eval_repeats` independent runs per goal), against the source algorithm learning from scratch
  on the same goals and a uniformly random policy; writes `results.json` and `curves.png`.

The in-context loop (`in_context_returns`) drives `GatoModel` directly through its KV cache:
each step feeds the previous action and the new observation, and samples one action token with
the logits masked to the 5 actions. At every episode start the cache is rebuilt from the last
`context_episodes - 1` episodes, so the context always begins at an episode boundary, as the
training windows do, and never exceeds the trained length.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from gato.cli import Command, parse_command
from gato.experiments.algorithm_distillation.config import PRESETS, ADConfig

PROG = "python -m gato.experiments.algorithm_distillation"
COMMANDS = {
    name: Command(text, (ADConfig,), presets=PRESETS, config_file=True)
    for name, text in (
        ("collect", "learning histories and expert episodes on the training goals"),
        ("train", "train the AD and ED models on the collected data"),
        ("evaluate", "in-context curves on the held-out goals: results.json, curves.png"),
        ("all", "collect, train, evaluate"),
    )
}


def main(argv: list[str] | None = None) -> Any:
    from gato.experiments.algorithm_distillation.evaluate import evaluate
    from gato.experiments.algorithm_distillation.experiment import collect, train

    argv = list(sys.argv[1:] if argv is None else argv)
    command, (config,) = parse_command(
        COMMANDS, argv, prog=PROG, description=__doc__.split("\n\n")[0]
    )
    outputs = {}
    if command in ("collect", "all"):
        outputs["collect"] = collect(config)
    if command in ("train", "all"):
        outputs["train"] = train(config, command=" ".join([PROG, *argv]))
    if command in ("evaluate", "all"):
        outputs["evaluate"] = evaluate(config)
    for name, value in outputs.items():
        shown = {k: v for k, v in value.items() if k not in ("curves", "config")}
        print(name, json.dumps(shown, indent=1)[:3000])
    return outputs


if __name__ == "__main__":
    main()
