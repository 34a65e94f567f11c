"""Environment-form observations -> the canonical dict, shared by adapters and policies."""

from collections import OrderedDict

import numpy as np
import pytest

from gato.schema import ActionSpec
from gato.tasks.envs import ObservationError
from gato.tasks.envs.convert import (
    ObservationConverter,
    babyai_observation,
    dmc_state,
    gym_observation,
    to_env_action,
)
from gato.tasks.registry import get_task


def test_suite_conversions_known_answers():
    np.testing.assert_array_equal(gym_observation(7, "discrete_observations", start=2), [5])
    assert gym_observation([1, 2], "continuous_observations").dtype == np.float32
    state = dmc_state(OrderedDict(velocity=np.array([3.0]), position=np.array([[1.0, 2.0]])))
    np.testing.assert_array_equal(state, [1.0, 2.0, 3.0])  # sorted keys, each flattened
    view = np.arange(7 * 7 * 3).reshape(7, 7, 3)
    obs = babyai_observation({"image": view, "direction": 2, "mission": "go to the red ball"})
    assert obs["text_observations"] == "go to the red ball"
    np.testing.assert_array_equal(obs["discrete_observations"][:4], [2, 0, 1, 2])
    assert obs["discrete_observations"].shape == (148,)


def test_atari_frames_are_stacked_per_episode():
    task = get_task("atari-pong")
    convert = ObservationConverter(task)
    frames = [np.full((84, 84), k, np.uint8) for k in range(6)]
    first = convert(frames[0])["image_observations"]
    assert first.shape == (84, 84, 4) and (first == 0).all()  # the first frame repeated
    for k in range(1, 6):
        stack = convert(frames[k])["image_observations"]
    np.testing.assert_array_equal(stack[0, 0], [2, 3, 4, 5])  # oldest first
    convert.reset()
    np.testing.assert_array_equal(convert(frames[5])["image_observations"][0, 0], [5] * 4)
    whole = np.zeros((84, 84, 4), np.uint8)
    assert convert(whole)["image_observations"] is whole  # a stack passes as it is
    with pytest.raises(ObservationError, match=r"AtariPreprocessing.*got a uint8 array of shape"):
        convert(np.zeros((210, 160, 3), np.uint8))


def test_babyai_bad_dict_names_the_keys():
    convert = ObservationConverter(get_task("babyai-go-to-red-ball"))
    with pytest.raises(ObservationError, match=r"'image', 'direction' and 'mission', got a dict"):
        convert({"image": np.zeros((7, 7, 3))})


def test_to_env_action():
    spec = ActionSpec("continuous", (2,), low=(-2.0, 0.0), high=(2.0, 10.0))
    np.testing.assert_allclose(to_env_action(np.array([1.0, -1.0]), spec), [2.0, 0.0])
    np.testing.assert_allclose(to_env_action([0.0, 3.0], spec), [0.0, 10.0])  # clipped
    plain = ActionSpec("continuous", (1,))
    np.testing.assert_allclose(to_env_action([0.5], plain, bounds=([-3.0], [3.0])), [1.5])
    assert to_env_action(np.int64(4), ActionSpec("discrete", (), num_values=6)) == 4
