"""Train a gato model on a data mixture: `python train.py --help`.

The same command runs on one CPU, one GPU, or many (see README.md for the launch lines).
"""

from gato.training import main

if __name__ == "__main__":
    main()
