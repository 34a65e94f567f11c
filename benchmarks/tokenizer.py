"""Tokenizer throughput on one core: a dm-control-like and an Atari-like episode.

    python benchmarks/tokenizer.py [--steps 1000] [--repeats 7]

Prints tokens/s (and patches/s for images) for the vectorised episode path and, in the same run,
for tokenizing the same episode one timestep at a time, so the ratio is measured on one machine
under one load. Goals: (a) >= 1M tokens/s, (b) >= 200k patches/s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from gato.schema import ActionSpec  # noqa: E402
from gato.tokens.tokenizer import GatoTokenizer  # noqa: E402


def _time(fn, repeats: int) -> float:
    fn()  # warm up (imports, caches)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000, help="timesteps per episode")
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats (median reported)")
    args = parser.parse_args()

    import cv2

    cv2.setNumThreads(1)
    rng = np.random.default_rng(0)
    tok = GatoTokenizer()
    t = args.steps

    control_obs = {"continuous": rng.normal(size=(t, 17))}
    control_act = {"continuous": rng.uniform(-1, 1, (t, 6))}
    control_spec = ActionSpec("continuous", shape=(6,))
    atari_obs = {"image": rng.integers(0, 256, (t, 84, 84, 4), dtype=np.uint8)}
    atari_act = {"discrete": rng.integers(0, 18, t)}
    atari_spec = ActionSpec("discrete", num_values=18)

    def episode(obs, act, spec):
        return lambda: tok.encode_episode(obs, act, spec)

    def stepwise(obs, act, spec):
        key, values = next(iter(obs.items()))
        ((akey, actions),) = act.items()
        return lambda: [
            tok.encode_timestep({key: values[i]}, {akey: actions[i]}, spec) for i in range(t)
        ]

    control = tok.encode_episode(control_obs, control_act, control_spec)
    atari = tok.encode_episode(atari_obs, atari_act, atari_spec)
    cases = [
        ("(a) 17 cont. obs + 6 cont. act", control_obs, control_act, control_spec, control),
        ("(b) 84x84x4 frames + discrete", atari_obs, atari_act, atari_spec, atari),
    ]
    print(f"tokenizer throughput, {t} steps per episode, median of {args.repeats}, one thread")
    header = f"| {'case':32} | {'path':9} | {'ms':>8} | {'tokens/s':>12} | {'patches/s':>11} |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for name, obs, act, spec, seq in cases:
        tokens, patches = len(seq), seq.patches.shape[0]
        for path, fn in (
            ("episode", episode(obs, act, spec)),
            ("stepwise", stepwise(obs, act, spec)),
        ):
            seconds = _time(fn, args.repeats)
            patch_rate = f"{patches / seconds:11,.0f}" if patches else f"{'-':>11}"
            print(
                f"| {name:32} | {path:9} | {seconds * 1e3:8.2f} | {tokens / seconds:12,.0f} "
                f"| {patch_rate} |"
            )


if __name__ == "__main__":
    main()
