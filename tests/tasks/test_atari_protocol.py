"""Atari evaluation protocols: options change what they say, bad options are named."""

from __future__ import annotations

import numpy as np
import pytest

from gato.evaluation.control import ControlEvalConfig
from gato.tasks.envs import make_env
from gato.tasks.envs.atari import ATARI_PROTOCOLS, atari_protocol, protocol_env
from gato.tasks.registry import get_task

pytest.importorskip("ale_py")


def pong(**options):
    return make_env(get_task("atari-pong"), **atari_protocol("data", options).env_kwargs())


def test_unknown_protocol_or_option_names_it_and_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown Atari protocol option 'sticky'.*noop_max"):
        atari_protocol("data", ["sticky=0.25"])
    with pytest.raises(ValueError, match=r"unknown Atari protocol 'dqn'.*'jat'"):
        atari_protocol("dqn")
    with pytest.raises(ValueError, match="not key=value"):
        atari_protocol("data", ["noop_max"])
    with pytest.raises(ValueError, match=r"sticky_actions must be in \[0, 1\]"):
        atari_protocol("data", ["sticky_actions=2"])
    with pytest.raises(ValueError, match="expected true or false"):
        atari_protocol("data", ["fire_reset=maybe"])
    # The evaluation's config refuses it before any rollout.
    with pytest.raises(ValueError, match="unknown Atari protocol option 'frames'"):
        ControlEvalConfig(atari_options=["frames=100"])


def test_presets_and_options():
    assert ATARI_PROTOCOLS["jat"].fire_reset and ATARI_PROTOCOLS["jat"].max_frames == 108_000
    sticky = atari_protocol("sticky", ["noop_max=0", "terminal_on_life_loss=true"])
    assert (sticky.sticky_actions, sticky.noop_max, sticky.terminal_on_life_loss) == (0.25, 0, True)
    assert "sticky actions 0.25" in sticky.describe()


def test_sticky_actions_repeat_the_previous_action():
    # With repeat probability 1 the emulator always repeats the previous action, which is NOOP
    # from the reset on: random actions then play exactly as NOOPs do. At 0 they do not.
    sticky, noops, plain = (pong(noop_max=0, sticky_actions=p) for p in (1.0, 0.0, 0.0))
    for env in (sticky, noops, plain):
        env.reset(seed=3)
    actions = np.random.default_rng(0).integers(1, 6, size=150)
    same, differs = True, False
    for action in actions:
        a = sticky.step(int(action))[0]["image_observations"]
        b = noops.step(0)[0]["image_observations"]
        c = plain.step(int(action))[0]["image_observations"]
        same &= np.array_equal(a, b)
        differs |= not np.array_equal(c, b)
    assert same and differs
    for env in (sticky, noops, plain):
        env.close()


def test_no_op_starts_vary_the_start():
    def start_frames(noop_max):
        env = pong(noop_max=noop_max)
        frames = []
        for seed in range(6):
            env.reset(seed=seed)
            frames.append(env.ale.getEpisodeFrameNumber())
        env.close()
        return frames

    assert start_frames(0) == [0] * 6
    varied = start_frames(30)
    assert len(set(varied)) > 1 and all(1 <= f <= 30 for f in varied)


def test_atari_protocols_become_adapter_arguments():
    pong = get_task("atari-pong")
    assert protocol_env(pong, None, []) == {}
    sticky = protocol_env(pong, "sticky", [])
    assert sticky["repeat_action_probability"] == 0.25 and sticky["noop_max"] == 30
    assert protocol_env(pong, None, ["noop_max=0"])["noop_max"] == 0
    with pytest.raises(ValueError, match="unknown Atari protocol 'slippery'"):
        protocol_env(pong, "slippery", [])
    with pytest.raises(ValueError, match="'gym-cartpole' is a gym task, not Atari"):
        protocol_env(get_task("gym-cartpole"), "sticky", [])
