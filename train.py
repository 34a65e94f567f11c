"""Train a gato model: `python train.py --help`.

With no arguments: the main job on the embedded default (build the demo mixture's missing data,
train the tiny preset, evaluate, write the report to runs/gato/). The same command runs on one CPU,
one GPU, or many (README.md has the launch lines). `--home DIR` (or $GATO_HOME) puts generated
data and relative run folders under DIR (gato/files.py); installed, `gato train` is this command.
"""

import sys

from gato.files import apply_home_flag

if __name__ == "__main__":
    sys.argv[1:] = apply_home_flag(sys.argv[1:])  # before the library reads the home
    from gato.training.pipeline import main

    main()
