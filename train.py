"""Train a gato model: `python train.py --help`.

With no arguments: the main job on the embedded default (build the demo mixture's missing data,
train the tiny preset, evaluate, write the report to runs/gato/). The same command runs on one CPU,
one GPU, or many (README.md has the launch lines).
"""

from gato.training.pipeline import main

if __name__ == "__main__":
    main()
