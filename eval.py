"""Evaluate a gato checkpoint as a control policy, a captioner or a chat model; push it to the hub.

    python eval.py control --checkpoint DIR --task T [--task T2 ...|--mixture M] --episodes N
    python eval.py caption --checkpoint DIR [--image FILE | --split heldout]
    python eval.py chat --checkpoint DIR [--prompt TEXT]
    python eval.py push --checkpoint RUN --repo_id NAME

`python eval.py <command> --help` lists the options; the work is in `gato.evaluation` (push:
`gato.training.hub`). Installed, `gato eval` is this command.
"""

from gato.__main__ import evaluate

if __name__ == "__main__":
    evaluate()
