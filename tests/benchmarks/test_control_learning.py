"""benchmarks/control_learning.py: the tiny configuration runs end to end on real episodes."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from references import slow_mean_class, slow_median_class

from gato.data.collect import CollectConfig, collect

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import control_learning  # noqa: E402


@pytest.fixture(scope="module")
def episodes(tmp_path_factory) -> Path:
    datasets.disable_progress_bars()
    out = tmp_path_factory.mktemp("control_learning") / "pendulum"
    collect(CollectConfig("gym-pendulum", 4, output=str(out), progress=False, filter=False))
    datasets.enable_progress_bars()
    return out


def test_tiny_benchmark_trains_scores_and_writes_curves(episodes, tmp_path, capsys):
    out_json, out_png = tmp_path / "curves.json", tmp_path / "curves.png"
    argv = ["--tiny", "--data", str(episodes), "--json", str(out_json), "--figure", str(out_png)]
    curves = control_learning.main(argv)
    assert [c.learner for c in curves] == ["mlp", "gato:table:4", "gato:table+fourier:1"]
    tiny = control_learning.TINY
    for curve in curves:
        assert curve.steps == list(tiny["steps"])
        assert curve.timesteps == [s * tiny["batch_timesteps"] for s in tiny["steps"]]
        assert all(math.isfinite(s) for s in curve.scores)
        assert curve.losses[-1] < curve.losses[0]  # every learner learns something
    report = json.loads(out_json.read_text())
    assert [c["learner"] for c in report["curves"]] == [c.learner for c in curves]
    assert out_png.stat().st_size > 0
    assert "gato:table+fourier:1" in capsys.readouterr().out  # the printed table
    merged = control_learning.main(["--merge", str(out_json), str(out_json)])
    assert [c.learner for c in merged] == [c.learner for c in curves] * 2
    assert merged[0].scores == curves[0].scores


def test_held_out_episodes_are_the_last_and_never_trained_on(episodes, capsys):
    """`--held-out 1`: the fixture's last episode is held out (training takes the first of the
    rest, `--max-episodes` counting among those), and every learner records a finite loss on it
    at each point."""
    task = control_learning.get_task("gym-pendulum")
    dataset = control_learning.load_data(str(episodes), task)
    config = control_learning.BenchConfig(held_out=1, max_episodes=2)
    train, held = control_learning.split_episodes(config, dataset)
    assert (len(train), len(held)) == (2, 1)
    first = [np.asarray(dataset[i]["rewards"]) for i in range(len(dataset))]
    np.testing.assert_array_equal(held[0]["rewards"], first[-1])
    for i in range(2):
        np.testing.assert_array_equal(train[i]["rewards"], first[i])
    assert control_learning.split_episodes(control_learning.BenchConfig(), dataset)[1] == ()
    for bad in (-1, len(dataset)):
        with pytest.raises(ValueError, match=f"--held-out {bad}: hold out 0 to 3 of the 4"):
            control_learning.split_episodes(control_learning.BenchConfig(held_out=bad), dataset)
    curves = control_learning.main(["--tiny", "--data", str(episodes), "--held-out", "1"])
    for curve in curves:
        assert len(curve.held_out_losses) == len(curve.steps)
        assert all(math.isfinite(v) and v > 0 for v in curve.held_out_losses)
    assert "held-out" in capsys.readouterr().out


def test_the_held_out_loss_is_measured_on_the_same_draws_in_eval_mode():
    """Each measure draws its batches from a generator seeded alike (the same batches at every
    point), with the model in eval mode and without gradients; training mode comes back."""
    model = torch.nn.Dropout(0.5)
    seen = []

    def loss_of_batch(rng, held_out=False):
        assert held_out and not model.training and not torch.is_grad_enabled()
        seen.append(float(rng.random()))
        return torch.tensor(seen[-1])

    config = control_learning.BenchConfig(held_out=1, held_out_batches=3, seed=5)
    first = control_learning.held_out_loss(model.train(), loss_of_batch, config)
    assert model.training
    again = control_learning.held_out_loss(model, loss_of_batch, config)
    assert seen[:3] == seen[3:] and len(set(seen[:3])) == 3
    assert first == again == pytest.approx(np.mean(seen[:3]))


def small_gato_learner(episodes: Path, name: str):
    """`gato_learner` of a 1 x 32 model on the fixture's pendulum episodes."""
    config = control_learning.BenchConfig(data=str(episodes), width=32, layers=1, heads=2)
    task = control_learning.get_task("gym-pendulum")
    data = control_learning.load_episodes(str(episodes), task=task)
    return control_learning.gato_learner(task, [data[i] for i in range(len(data))], name, config)


def test_hidden_actions_and_a_short_history_reach_the_policy(episodes):
    name = "gato:fourier:4:obs=8:act=8:sep=0:bins=256:drop=1.0:hist=2"
    _, batch, actor, learner = small_gato_learner(episodes, name)
    assert learner.action_dropout == 1.0 and learner.act_history == 2
    policy = actor()
    assert policy.config.hide_actions and policy.config.history_steps == 2
    assert math.isfinite(float(batch(np.random.default_rng(0)).detach()))


def test_standardised_learner_records_its_statistics_and_slows_its_blocks(episodes):
    """`std=1`: the learner's tokenizer and its policy standardise by the training episodes'
    statistics, which its model records; `blr=0.1`: the blocks' optimizer share."""
    from gato.tokens.statistics import ObservationStatistics

    name = "gato:fourier:1:obs=32:act=8:sep=0:bins=256:feat=lowfreq_mlp:std=1:blr=0.1"
    model, batch, actor, learner = small_gato_learner(episodes, name)
    assert learner.standardise and learner.block_lr_scale == 0.1
    data = control_learning.load_episodes(
        str(episodes), task=control_learning.get_task("gym-pendulum")
    )
    expected = ObservationStatistics.of_episodes(data[i] for i in range(len(data)))
    recorded = model.config.task_statistics("gym-pendulum")
    np.testing.assert_allclose(recorded.mean, expected.mean)
    np.testing.assert_allclose(actor().tokenizer.observation_statistics.std, expected.std)
    assert math.isfinite(float(batch(np.random.default_rng(0)).detach()))


def test_packed_rows_hold_windows_of_several_episodes(episodes):
    """`pack=3`: a training row is 3 windows side by side (the main job's short windows), so the
    model's context covers them and a batch keeps its timesteps."""
    model, batch, actor, learner = small_gato_learner(episodes, "gato:fourier:2:obs=8:pack=3")
    assert learner.pack == 3
    tokens_per_step = 3 + 1 + 1  # pendulum: 3 observation values, the separator, 1 action
    assert model.config.max_position_embeddings == 2 * 3 * tokens_per_step
    assert math.isfinite(float(batch(np.random.default_rng(0)).detach()))
    assert actor().config.history_steps == 1  # the policy's view is one window's


def test_isolated_packed_windows_attend_only_to_themselves(episodes):
    """`iso=1`: the row's windows carry segment ids, so the same draw of windows scores another
    loss than with every window seeing the ones before it (the same initial weights)."""
    name = "gato:fourier:2:obs=8:pack=3"
    losses = {}
    for option in ("", ":iso=1"):
        model, batch, _, learner = small_gato_learner(episodes, name + option)
        assert learner.isolate_packed == bool(option)
        model.eval()
        with torch.no_grad():
            losses[option] = float(batch(np.random.default_rng(0)))
    assert math.isfinite(losses[":iso=1"])
    assert losses[":iso=1"] != pytest.approx(losses[""], rel=1e-5)


def test_unknown_learner_is_named(episodes):
    with pytest.raises(ValueError, match="unknown learner 'gato:table'"):
        control_learning.main(["--data", str(episodes), "--learners", "gato:table", "--steps", "1"])


def test_specialist_cache_holds_the_mlps_last_mean_score(tmp_path):
    from gato.evaluation.baselines import read_specialists

    Curve, config = control_learning.Curve, control_learning.BenchConfig(task="gym-pendulum")
    curves = [
        Curve("mlp", steps=[10, 20], scores=[0.2, 0.6], seed=0),
        Curve("mlp", steps=[10, 20], scores=[0.4, 0.8], seed=1),
        Curve("gato:table:1", steps=[10, 20], scores=[0.1, 0.1]),
    ]
    cache = tmp_path / "specialists.json"
    control_learning.cache_specialist(curves, config, str(cache))
    entry = read_specialists(cache)["gym-pendulum"]
    assert entry["normalized_score"] == pytest.approx(0.7)
    assert (entry["steps"], entry["seeds"], entry["learner"]) == (20, 2, "mlp")
    with pytest.raises(ValueError, match="needs the mlp learner"):
        control_learning.cache_specialist(curves[2:], config, str(cache))


def test_mlp_features_reads_what_a_grouped_model_is_given():
    """`gato_value_features` is, slot for slot, the feature block `GroupEmbedding` writes for the
    tokenizer's ids of the same observation (checked through a linear map with an identity
    weight, so any reordering or other coordinate fails)."""
    import numpy as np
    import torch

    from gato.modeling.config import ENCODINGS, GatoConfig
    from gato.modeling.groups import GroupEmbedding, group_layout
    from gato.tokens.tokenizer import GatoTokenizer

    obs = np.array([[0.3, -2.0, 7.5]], dtype=np.float32)
    ours = control_learning.gato_value_features(torch.from_numpy(obs))  # (1, 3 (2F + 1))
    grouped = GatoConfig(**ENCODINGS["grouped"])
    f = grouped.value_fourier_features
    assert ours.shape == (1, 3 * (2 * f + 1))
    sequence = GatoTokenizer().encode_episode({"continuous": obs}, {"continuous": np.zeros((1, 1))})
    ids = torch.as_tensor(sequence.ids)[None]
    local = torch.as_tensor(sequence.local_positions)[None]
    layout = group_layout(ids, local, None, 3, 1, keep_separator=False)
    module = GroupEmbedding(3 * (2 * f + 2), 3, 1, f, grouped.value_fourier_top)
    with torch.no_grad():
        module.observations.weight.copy_(torch.eye(3 * (2 * f + 2)))
        module.observations.bias.zero_()
    embedded = module(layout, ids, torch.float32)[0, 0].view(3, 2 * f + 2)
    torch.testing.assert_close(embedded[:, :-1].reshape(1, -1), ours)
    assert torch.all(embedded[:, -1] == 1)  # the filled flags


def test_mlp_features_learner_trains(episodes):
    curves = control_learning.main(
        ["--tiny", "--data", str(episodes), "--learners", "mlp-features"]
    )
    assert [c.learner for c in curves] == ["mlp-features"]
    assert curves[0].losses[-1] < curves[0].losses[0]


def test_periodic_features_against_the_formula():
    """`periodic` written out: [u, sin(2 pi k u / P) for k = 1..F, cos(...)], per dimension."""
    import math

    import torch

    u = torch.tensor([[0.5, -1.25], [3.0, 0.0]])
    out = control_learning.periodic(u, 3, 4.0)
    assert out.shape == (2, 2 * (2 * 3 + 1))
    for row in range(2):
        expected = list(u[row].tolist())
        expected += [
            math.sin(2 * math.pi * k * x / 4.0) for x in u[row].tolist() for k in (1, 2, 3)
        ]
        expected += [
            math.cos(2 * math.pi * k * x / 4.0) for x in u[row].tolist() for k in (1, 2, 3)
        ]
        torch.testing.assert_close(out[row], torch.tensor(expected), atol=1e-6, rtol=0)


def test_mlp_inputs_standardise_by_the_training_data():
    """`floats` is the standardised observation; `symlog` reads the decoded values with no
    statistics; `fourier_code` is `gato_value_features`."""
    import numpy as np
    import torch

    rng = np.random.default_rng(0)
    obs = (rng.normal(size=(500, 3)) * [1.0, 0.01, 5.0] + [0.0, 0.5, -2.0]).astype(np.float32)
    x = torch.from_numpy(obs)
    floats = control_learning.MLPPolicy(obs, 1, inputs="floats").represent(x)
    torch.testing.assert_close(floats.mean(0), torch.zeros(3), atol=1e-4, rtol=0)
    torch.testing.assert_close(floats.std(0), torch.ones(3), atol=1e-3, rtol=0)
    sym = control_learning.MLPPolicy(obs, 1, inputs="symlog").represent(x[:4])
    values = control_learning.decoded(x[:4])
    torch.testing.assert_close(sym, torch.sign(values) * torch.log1p(values.abs()))
    # the tokenizer's bins move a value by less than its bin's half width (relative, mu-law)
    assert torch.all((values - x[:4]).abs() <= 0.01 * x[:4].abs() + 1e-3)
    code = control_learning.MLPPolicy(obs, 1, inputs="fourier_code").represent(x[:4])
    torch.testing.assert_close(code, control_learning.gato_value_features(x[:4]))
    z = control_learning.MLPPolicy(obs, 1, inputs="fourier_z", frequencies=2, period=8.0)
    assert z.represent(x[:4]).shape == (4, 3 * 5)


def test_mlp_learner_names():
    assert control_learning.parse_mlp("mlp") == {"inputs": "floats"}
    assert control_learning.parse_mlp("mlp-features") == {"inputs": "fourier_code"}
    assert control_learning.parse_mlp("mlp:fourier_z:freq=4:period=16") == {
        "inputs": "fourier_z", "frequencies": 4, "period": 16.0,
    }  # fmt: skip
    with pytest.raises(ValueError, match="unknown MLP learner 'mlp:nope'"):
        control_learning.parse_mlp("mlp:nope")
    with pytest.raises(ValueError, match="unknown option 'bins=3'"):
        control_learning.parse_mlp("mlp:symlog:bins=3")


def test_mlp_input_learner_trains(episodes):
    curves = control_learning.main(
        ["--tiny", "--data", str(episodes), "--learners", "mlp:fourier_symlog:freq=2"]
    )
    assert [c.learner for c in curves] == ["mlp:fourier_symlog:freq=2"]
    assert curves[0].losses[-1] < curves[0].losses[0]


def test_pixel_statistics_match_numpy_and_refuse_nothing():
    rng = np.random.default_rng(0)
    frames = torch.from_numpy(rng.integers(0, 256, size=(37, 8, 8, 4), dtype=np.uint8))
    mean, std = control_learning.pixel_statistics(frames, chunk=5)
    pixels = frames.numpy().astype(np.float64)
    assert mean == pytest.approx(pixels.mean(), rel=1e-12)
    assert std == pytest.approx(pixels.std(), rel=1e-9)
    assert control_learning.pixel_statistics(torch.full((3, 4, 4, 1), 87, dtype=torch.uint8)) == (
        87.0,
        1.0,
    )
    with pytest.raises(ValueError, match="no frames"):
        control_learning.pixel_statistics(torch.zeros((0, 8, 8, 4), dtype=torch.uint8))


def test_nature_cnn_standardises_its_pixels():
    """The first convolution sees (pixel - mean) / std: a network given mean and std equals one
    given the standardised frames as floats with mean 0 and std 1."""
    torch.manual_seed(0)
    net = control_learning.NatureCNN(4, 6, side=84, mean=87.0, std=20.0)
    frames = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (3, 84, 84, 4), np.uint8))
    plain = control_learning.NatureCNN(4, 6, side=84, mean=0.0, std=1.0)
    plain.load_state_dict({**net.state_dict(), "mean": torch.tensor(0.0), "std": torch.tensor(1.0)})
    standardised = (frames.float() - 87.0) / 20.0
    torch.testing.assert_close(net(frames), plain(standardised))
    with pytest.raises(ValueError, match="std must be positive"):
        control_learning.NatureCNN(4, 6, std=0.0)


def test_random_shift_crops_the_edge_padded_frame():
    rng = np.random.default_rng(0)
    frames = torch.from_numpy(rng.integers(0, 256, size=(6, 10, 12, 4), dtype=np.uint8))
    assert control_learning.random_shift(frames, 0, rng) is frames
    out = control_learning.random_shift(frames, 2, np.random.default_rng(5))
    assert out.shape == frames.shape and out.dtype == torch.uint8
    padded = np.pad(frames.numpy(), ((0, 0), (2, 2), (2, 2), (0, 0)), mode="edge")
    offsets = np.random.default_rng(5).integers(0, 5, size=(6, 2))
    for i, (dy, dx) in enumerate(offsets):
        np.testing.assert_array_equal(out[i].numpy(), padded[i, dy : dy + 10, dx : dx + 12])
    with pytest.raises(ValueError, match="pad must be >= 0"):
        control_learning.random_shift(frames, -1, rng)


def test_cnn_learner_names():
    assert control_learning.parse_cnn("cnn") == {"shift": 0, "prev": 0, "diff": 0}
    assert control_learning.parse_cnn("cnn:shift=4") == {"shift": 4, "prev": 0, "diff": 0}
    assert control_learning.parse_cnn("cnn:prev=2:shift=1:diff=1") == {
        "shift": 1,
        "prev": 2,
        "diff": 1,
    }
    for bad in ("cnn:crop=4", "cnn:prev=-1", "cnn:prev"):
        with pytest.raises(ValueError, match="options are shift=<pixels>, prev=<actions> and diff"):
            control_learning.parse_cnn(bad)
    with pytest.raises(ValueError, match="diff is 0 or 1, got 2"):
        control_learning.parse_cnn("cnn:diff=2")


def test_a_cnn_of_differences_reads_the_stack_then_each_frame_minus_the_one_before():
    torch.manual_seed(0)
    net = control_learning.NatureCNN(4, 6, side=84, mean=87.0, std=20.0, differences=True)
    assert net.conv[0].in_channels == 7
    frames = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (3, 84, 84, 4), np.uint8))
    z = (frames.permute(0, 3, 1, 2).double() - 87.0) / 20.0
    inputs = torch.cat([z] + [z[:, k + 1 : k + 2] - z[:, k : k + 1] for k in range(3)], dim=1)
    want = net.head(net.conv(inputs.float()))
    torch.testing.assert_close(net(frames), want, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="differences need 2 or more frames, got 1"):
        control_learning.NatureCNN(1, 6, differences=True)


def test_previous_actions_stop_at_the_episode_start():
    # Two episodes: steps 0-2 and 3-6.
    actions = torch.tensor([5, 4, 3, 2, 1, 0, 3])
    first = torch.tensor([0, 0, 0, 3, 3, 3, 3])
    got = control_learning.previous_actions(actions, first, torch.tensor([0, 2, 3, 4, 6]), 2)
    expected = [[-1, -1], [4, 5], [-1, -1], [2, -1], [0, 1]]
    assert got.tolist() == expected


def test_a_cnn_of_previous_actions_reads_them_one_hot():
    """The head sees the convolutions' features and one one-hot block per previous action (zeros
    before the episode's start): two inputs that differ only in the previous actions differ in
    output by the head's weights on those blocks."""
    torch.manual_seed(0)
    net = control_learning.NatureCNN(4, 6, side=84, previous=2)
    frames = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (3, 84, 84, 4), np.uint8))
    previous = torch.tensor([[1, 5], [-1, -1], [0, -1]])
    features = net.conv((frames.permute(0, 3, 1, 2).float() - net.mean) / net.std)
    onehot = torch.zeros(3, 12)
    onehot[0, 1] = onehot[0, 6 + 5] = onehot[2, 0] = 1.0
    torch.testing.assert_close(net(frames, previous), net.head(torch.cat([features, onehot], 1)))
    with pytest.raises(ValueError, match=r"reads the 2 previous actions of each of the 3"):
        net(frames)
    with pytest.raises(ValueError, match="previous must be >= 0"):
        control_learning.NatureCNN(4, 6, previous=-1)


def test_the_previous_actions_actor_remembers_what_it_played_per_row():
    class Fixed(torch.nn.Module):
        """Plays the observation's "a" whatever it saw; records what it was given."""

        seen: list = []

        def forward(self, obs, previous):
            self.seen.append(previous.tolist())
            return torch.nn.functional.one_hot(obs.long().view(-1), 6).float()

    net = Fixed()
    actor = control_learning.DiscreteActor(net, "a", 3, previous=2)
    assert actor.act_batch([{"a": np.array(v)} for v in (1, 2, 3)]) == [1, 2, 3]
    actor.act_batch([{"a": np.array(v)} for v in (4, 5, 0)])
    actor.reset_env(1)
    actor.remove_envs([1, 2])
    actor.act_batch([{"a": np.array(v)} for v in (2, 2)])
    assert net.seen == [
        [[-1, -1], [-1, -1], [-1, -1]],
        [[1, -1], [2, -1], [3, -1]],
        [[-1, -1], [0, 3]],
    ]
    assert actor.num_envs == 2


def test_an_averaging_learner_is_scored_on_the_average_and_trains_on_its_weights(monkeypatch):
    """`--ema d`: each point scores the weights' average (the first step's weights, then
    d x average + (1 - d) x weights), and training goes on from the trained weights."""
    torch.manual_seed(0)
    model, decay = torch.nn.Linear(2, 1), 0.5
    seen_by_loss, scored = [], []

    def loss(rng):
        seen_by_loss.append(model.weight.detach().clone())
        return (model(torch.ones(1, 2)) - 3.0).pow(2).sum()

    def score(task, actor, config):
        scored.append(model.weight.detach().clone())
        return 0.0

    monkeypatch.setattr(control_learning, "score", score)
    config = control_learning.BenchConfig(steps=(1, 2), lr=0.1, ema=decay)
    control_learning._train("linear", model, loss, lambda: None, None, config)
    w1, w2 = seen_by_loss[1], model.weight.detach()
    assert not torch.equal(w1, w2)
    torch.testing.assert_close(scored[0], w1)
    torch.testing.assert_close(scored[1], decay * w1 + (1 - decay) * w2)


def test_bf16_precision_trains_under_autocast_and_scores_in_fp32(monkeypatch):
    """`--precision bf16`: the loss's forward runs in bf16 (as the Trainer's), the scoring in
    fp32; fp32 runs unchanged; other precisions are refused by name."""
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1)
    forward_dtypes, scored_dtypes = [], []

    def loss(rng):
        out = model(torch.ones(1, 2))
        forward_dtypes.append(out.dtype)
        return (out.float() - 3.0).pow(2).sum()

    def score(task, actor, config):
        scored_dtypes.append(model(torch.ones(1, 2)).dtype)
        return 0.0

    monkeypatch.setattr(control_learning, "score", score)
    for precision, want in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        forward_dtypes.clear()
        config = control_learning.BenchConfig(steps=(2,), lr=0.1, precision=precision)
        control_learning._train("linear", model, loss, lambda: None, None, config)
        assert forward_dtypes == [want, want]
        assert model.weight.dtype == torch.float32
    assert scored_dtypes == [torch.float32, torch.float32]
    *_, own = control_learning.parse_gato("gato:table:1:prec=bf16", config)
    assert (own.precision, config.precision) == ("bf16", "fp32")  # one learner's own
    with pytest.raises(ValueError, match="precision must be one of .*'fp16'"):
        control_learning.training_precision(control_learning.BenchConfig(precision="fp16"))
    with pytest.raises(SystemExit):
        control_learning.main(["--precision", "fp16"])


class _FixedLogits(torch.nn.Module):
    """An MLP stand-in whose logits are the same for every observation."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(obs.shape[0], *self.logits.shape)


def test_mlp_actor_reads_each_action_dimension_as_told():
    """Two action dimensions: a spike on a low bin beside mass spread over high bins (mode,
    median and mean differ), and a one-bin spike (all agree); against the slow references."""
    bins = control_learning.ACTION_BINS
    spread = torch.full((bins,), -30.0)
    spread[10] = 3.0
    spread[bins // 2 :] = 0.0
    spike = torch.full((bins,), -30.0)
    spike[200] = 5.0
    logits = torch.stack([spread, spike])  # (A=2, bins)
    centre = lambda b: (b + 0.5) * (2.0 / bins) - 1.0  # noqa: E731
    expected = {
        "mode": [10, 200],
        "median": [slow_median_class(spread.tolist()), slow_median_class(spike.tolist())],
        "mean": [slow_mean_class(spread.tolist()), slow_mean_class(spike.tolist())],
    }
    assert len({e[0] for e in expected.values()}) == 3  # the three readings differ here
    observations = [{"continuous_observations": np.zeros(3, np.float32)}] * 2
    for decoding, want in expected.items():
        actor = control_learning.MLPActor(_FixedLogits(logits), 2, decoding)
        for action in actor.act_batch(observations):
            np.testing.assert_allclose(action, [centre(b) for b in want], rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="decoding must be one of .* got 'argmax'"):
        control_learning.MLPActor(_FixedLogits(logits), 2, "argmax")


def test_learning_rate_schedules_warm_up_then_hold_or_decay_to_zero_at_the_last_point():
    config = control_learning.BenchConfig(steps=(100, 400), warmup=10)
    constant = control_learning.lr_factor(config)
    assert [constant(s) for s in (0, 4, 9, 10, 399)] == [0.1, 0.5, 1.0, 1.0, 1.0]
    config.schedule = "cosine"
    cosine = control_learning.lr_factor(config)
    assert cosine(0) == pytest.approx(0.1) and cosine(10) == pytest.approx(1.0)
    # Half way from the warmup's end to the last point, the cosine is at half; at it, 0.
    assert cosine(205) == pytest.approx(0.5) and cosine(400) == pytest.approx(0.0)
    assert all(cosine(s) >= cosine(s + 1) for s in range(10, 400))
    config.schedule = "linear"
    with pytest.raises(ValueError, match="schedule must be constant or one of .* got 'linear'"):
        control_learning.lr_factor(config)
