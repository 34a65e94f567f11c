"""Evaluate a gato checkpoint as a control policy, a captioner or a chat model.

    python eval.py control --checkpoint DIR --task T [--task T2 ...|--mixture M] --episodes N
    python eval.py caption --checkpoint DIR [--image FILE | --split heldout]
    python eval.py chat --checkpoint DIR [--prompt TEXT]

`python eval.py <command> --help` lists the options; the work is in `gato.evaluation`.
"""

from gato.evaluation.cli import main

if __name__ == "__main__":
    main()
