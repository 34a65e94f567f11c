"""PathNet core: genotypes, mutation, the tournament, the modular network, freezing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gato.experiments.pathnet.evolution import (
    active_modules,
    mutate,
    random_genotype,
    random_population,
    tournament,
    validate_genotype,
)
from gato.experiments.pathnet.network import PathNet, PathNetConfig
from gato.experiments.pathnet.report import speedup, spread

# -- genotypes ----------------------------------------------------------------------------------


@pytest.mark.parametrize("layers,active,modules", [(3, 3, 10), (4, 4, 4), (1, 1, 1), (2, 5, 7)])
def test_genotype_stays_valid_after_any_number_of_mutations(layers, active, modules):
    rng = np.random.default_rng(layers * 100 + modules)
    genotype = random_genotype(layers, active, modules, rng)
    for step in range(3000):
        # Alternate the paper's rate with a certain mutation to visit the wrap-around often.
        genotype = mutate(genotype, modules, rng, probability=None if step % 2 else 1.0)
        checked = validate_genotype(genotype, layers, active, modules)
        assert checked.shape == (layers, active)
        assert all(len(row) <= active for row in active_modules(checked))
        assert checked.min() >= 0 and checked.max() < modules


def test_mutation_rate_and_shift_follow_the_paper():
    layers, active, modules = 3, 3, 10
    rng = np.random.default_rng(0)
    base = np.full((layers, active), 5, dtype=np.int64)
    trials = 20000
    mutated = np.stack([mutate(base, modules, rng) for _ in range(trials)])
    changed = mutated != base
    # Each element mutates with p = 1/(N L); a drawn shift of 0 leaves it as it was (1 in 5).
    expected = (1.0 / (layers * active)) * 4 / 5
    assert abs(changed.mean() - expected) < 0.004
    assert set(np.unique(mutated - base)) == {-2, -1, 0, 1, 2}
    assert np.array_equal(base, np.full((layers, active), 5))  # the input is untouched


def test_mutation_wraps_into_range():
    rng = np.random.default_rng(1)
    edge = np.array([[0, 9]])
    seen = set()
    for _ in range(500):
        seen.update(mutate(edge, 10, rng, probability=1.0).ravel().tolist())
    assert seen == {8, 9, 0, 1, 2, 7}


@pytest.mark.parametrize(
    "genotype,message",
    [
        (np.zeros((2, 3), dtype=np.int64), "shape"),
        (np.full((3, 3), 10), r"\[0, M=10\)"),
        (np.full((3, 3), -1), r"\[0, M=10\)"),
        (np.zeros((3, 3), dtype=np.float32), "integer"),
    ],
)
def test_bad_genotypes_are_named(genotype, message):
    with pytest.raises(ValueError, match=message):
        validate_genotype(genotype, 3, 3, 10)


def test_more_active_than_modules_is_an_error():
    with pytest.raises(ValueError, match="exceeds"):
        validate_genotype(np.zeros((3, 4), dtype=np.int64), 3, 4, 3)
    with pytest.raises(ValueError, match="cannot exceed"):
        PathNetConfig(active=5, modules=4)
    with pytest.raises(ValueError, match="at least 2"):
        random_population(1, 3, 3, 10, np.random.default_rng(0))


# -- the tournament -----------------------------------------------------------------------------


def test_tournament_keeps_the_better_pathway_on_a_rigged_fitness():
    rng = np.random.default_rng(0)
    population = random_population(8, 3, 3, 10, rng)
    before = [g.copy() for g in population]

    def fitness(g):  # rigged: pathways through low module indices are better
        return -float(g.sum())

    result = tournament(population, fitness, 10, rng, probability=0.0)
    assert result.winner != result.loser
    assert result.winner_fitness >= result.loser_fitness
    assert -before[result.winner].sum() >= -before[result.loser].sum()
    # The winner is unchanged; the loser is now its (unmutated, p = 0) copy; nobody else moved.
    np.testing.assert_array_equal(population[result.winner], before[result.winner])
    np.testing.assert_array_equal(population[result.loser], before[result.winner])
    for i in set(range(8)) - {result.winner, result.loser}:
        np.testing.assert_array_equal(population[i], before[i])


def test_tournaments_drive_the_population_to_the_rigged_optimum():
    rng = np.random.default_rng(3)
    population = random_population(16, 3, 3, 10, rng)
    best_start = max(-float(g.sum()) for g in population)
    for _ in range(600):
        tournament(population, lambda g: -float(g.sum()), 10, rng)
    best_end = max(-float(g.sum()) for g in population)
    mean_end = np.mean([-float(g.sum()) for g in population])
    assert best_end >= best_start
    assert mean_end > best_start - 3  # the whole population has moved to (near) the best


def test_tournament_ties_go_to_the_first_drawn():
    rng = np.random.default_rng(5)
    population = [np.full((1, 1), i, dtype=np.int64) for i in range(4)]
    calls = []

    def fitness(g):
        calls.append(int(g[0, 0]))
        return 1.0

    result = tournament(population, fitness, 4, rng, probability=0.0)
    assert result.winner == calls[0] and result.loser == calls[1]


# -- the network --------------------------------------------------------------------------------


def _net(kind: str = "linear", seed: int = 0) -> PathNet:
    shape = (6,) if kind == "linear" else (2, 4, 4)
    cfg = PathNetConfig(layers=2, modules=4, active=2, width=5, kind=kind, input_shape=shape)
    return PathNet(cfg, torch.Generator().manual_seed(seed))


def test_forward_sums_the_distinct_active_modules():
    net = _net()
    net.add_head("a", 3)
    x = torch.randn(7, 6)
    genotype = np.array([[1, 1], [0, 3]])
    h = torch.relu(net.layers[0][1](x))  # module 1 once, not twice
    h = torch.relu(net.layers[1][0](h)) + torch.relu(net.layers[1][3](h))
    expected = net.heads["a"](h)
    torch.testing.assert_close(net(x, genotype, "a"), expected)


def test_conv_modules_and_input_checks():
    net = _net("conv")
    net.add_head("a", 2)
    out = net(torch.randn(3, 2, 4, 4), np.array([[0, 1], [2, 2]]), "a")
    assert out.shape == (3, 2)
    with pytest.raises(ValueError, match="input must be"):
        net(torch.randn(3, 6), np.array([[0, 1], [2, 2]]), "a")
    with pytest.raises(ValueError, match="unknown task"):
        net(torch.randn(3, 2, 4, 4), np.array([[0, 1], [2, 2]]), "b")
    with pytest.raises(ValueError, match="odd"):
        PathNetConfig(kind="conv", input_shape=(1, 8, 8), kernel_size=2)
    with pytest.raises(ValueError, match="kind"):
        PathNetConfig(kind="lstm")


def _train(net, genotype, task, x, y, steps=30, lr=0.1):
    params = net.pathway_parameters(genotype, task)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.1)
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(net(x, genotype, task), y)
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_frozen_parameters_are_bit_identical_after_training_another_task():
    torch.manual_seed(0)
    net = _net()
    net.add_head("a", 2)
    x, y = torch.randn(32, 6), torch.randint(0, 2, (32,))
    path_a = np.array([[0, 1], [2, 2]])
    _train(net, path_a, "a", x, y)
    net.freeze(path_a, "a")
    frozen = {name: p.detach().clone() for name, p in net.frozen_state()}
    assert set(frozen) == {
        f"layers.{layer}.{m}.{kind}"
        for layer, m in [(0, 0), (0, 1), (1, 2)]
        for kind in ("weight", "bias")
    } | {"heads.a.weight", "heads.a.bias"}
    logits_a = net(x, path_a, "a").detach()
    reset = net.reinitialise_unfrozen(torch.Generator().manual_seed(1))
    assert reset == 8 - 3
    net.add_head("b", 2)
    # Task B's pathway reads frozen modules (0 in layer 0, 2 in layer 1) and trains others.
    path_b = np.array([[0, 3], [2, 1]])
    trained_before = net.layers[0][3].weight.detach().clone()
    _train(net, path_b, "b", x, 1 - y)
    for name, p in net.frozen_state():
        assert torch.equal(p, frozen[name]), name
    assert not torch.equal(net.layers[0][3].weight, trained_before)  # B did learn
    assert torch.equal(net(x, path_a, "a"), logits_a)  # A answers exactly as before


def test_pathway_parameters_leave_frozen_ones_out():
    net = _net()
    net.add_head("a", 2)
    path = np.array([[0, 1], [2, 3]])
    assert len(net.pathway_parameters(path, "a")) == 2 * 4 + 2
    net.freeze(np.array([[0, 0], [3, 3]]), "a")
    names = {id(p) for p in net.pathway_parameters(path, "a")}
    assert len(names) == 2 * 2
    assert id(net.layers[0][0].weight) not in names and id(net.heads["a"].weight) not in names


def test_reinitialise_is_seeded_and_spares_frozen_modules():
    a, b = _net(seed=0), _net(seed=0)
    for net in (a, b):
        net.freeze(np.array([[0, 0], [1, 1]]))
        net.reinitialise_unfrozen(torch.Generator().manual_seed(9))
    assert torch.equal(a.layers[1][2].weight, b.layers[1][2].weight)
    assert torch.equal(a.layers[0][0].weight, _net(seed=0).layers[0][0].weight)
    assert not torch.equal(a.layers[0][1].weight, _net(seed=0).layers[0][1].weight)


# -- statistics ---------------------------------------------------------------------------------


def test_spread_and_speedup():
    s = spread([1.0, 2.0, 3.0, 4.0])
    assert s.mean == 2.5 and s.median == 2.5 and s.n == 4
    assert abs(s.std - np.std([1, 2, 3, 4], ddof=1)) < 1e-12
    result = speedup([20.0, 30.0, 40.0], [10.0, 15.0, 20.0])
    assert result["ratio"] == pytest.approx(2.0)
    assert result["low"] == pytest.approx(2.0) and result["high"] == pytest.approx(2.0)
    noisy = speedup([20.0, 30.0, 50.0, 10.0], [10.0, 30.0, 20.0, 10.0])
    assert noisy["low"] <= noisy["ratio"] <= noisy["high"]
    with pytest.raises(ValueError, match="equal-length"):
        speedup([1.0], [1.0, 2.0])


# -- the supervised experiment ------------------------------------------------------------------


def test_learn_task_reaches_the_target_on_separable_data():
    from gato.experiments.pathnet.digits import BinaryTask
    from gato.experiments.pathnet.supervised import SupervisedConfig, learn_task

    g = torch.Generator().manual_seed(0)
    x = torch.rand(200, 64, generator=g)
    y = (x[:, :32].sum(1) > x[:, 32:].sum(1)).long()
    task = BinaryTask("toy", x[:150], y[:150], x[150:], y[150:])
    config = SupervisedConfig(
        population=8,
        steps_per_pathway=20,
        target_accuracy=0.9,
        learning_rate=0.1,
        max_generations=60,
    )
    net = PathNet(config.network(), g)
    run = learn_task(net, task, config, np.random.default_rng(0), g)
    assert run.reached and run.train_accuracy >= 0.9
    assert run.steps == run.generations * 2 * 20
    validate_genotype(run.genotype, 3, 3, 10)


def test_supervised_config_and_task_names_are_checked():
    from gato.experiments.pathnet.digits import parse_pair
    from gato.experiments.pathnet.supervised import SupervisedConfig

    assert parse_pair("6v8:3v8") == ("6v8", "3v8")
    for bad in ("6v8", "6v6:3v8", "6v8:x"):
        with pytest.raises(ValueError, match="task"):
            parse_pair(bad)
    with pytest.raises(ValueError, match="cannot exceed"):
        SupervisedConfig(active=11)
    with pytest.raises(ValueError, match="conditions"):
        SupervisedConfig(conditions=["finetune"])


def test_supervised_command_line_smoke(tmp_path):
    pytest.importorskip("sklearn")
    from gato.experiments.pathnet.__main__ import main

    result = main([
        "supervised", "--pairs", "3v8:8v3", "--seeds", "2", "--population", "4",
        "--steps_per_pathway", "5", "--max_generations", "3", "--output_dir", str(tmp_path),
    ])  # fmt: skip
    entry = result["summary"]["3v8:8v3"]
    assert entry["seeds"] == 2 and entry["frozen_unchanged"]
    assert set(entry["conditions"]) == {"pathnet", "finetune", "scratch"}
    share, chance = entry["b_frozen_share_per_layer"], entry["b_frozen_share_by_chance"]
    assert len(share) == len(chance) == 3
    assert all(0 <= v <= 1 for v in share + chance)
    for name in ("results.jsonl", "summary.json", "summary.md", "generations.png"):
        assert (tmp_path / name).exists()


def test_salt_and_pepper_noise_hits_the_asked_share_with_zeros_and_ones():
    from gato.experiments.pathnet.digits import salt_and_pepper

    x = torch.full((200, 64), 0.5)
    assert salt_and_pepper(x, 0.0, np.random.default_rng(0)) is x
    noisy = salt_and_pepper(x, 0.2, np.random.default_rng(0))
    hit = noisy != 0.5
    assert abs(float(hit.float().mean()) - 0.2) < 0.01
    assert set(noisy[hit].unique().tolist()) == {0.0, 1.0}
    assert torch.equal(x, torch.full((200, 64), 0.5))  # the input is left alone


def test_noisy_task_scores_on_fixed_copies_and_subsets_keep_the_first_images():
    pytest.importorskip("sklearn")
    from gato.experiments.pathnet.digits import load_digits_task

    clean = load_digits_task("3v8")
    assert torch.equal(clean.train_eval_x, clean.train_x)
    noisy = load_digits_task("3v8", noise=0.1)
    again = load_digits_task("3v8", noise=0.1)
    assert torch.equal(noisy.train_x, clean.train_x)  # minibatches are corrupted when drawn
    assert torch.equal(noisy.train_eval_x, again.train_eval_x)  # one fixed copy per task
    assert not torch.equal(noisy.train_eval_x, clean.train_x)
    assert not torch.equal(noisy.test_x, clean.test_x)
    small = noisy.subset(30)
    assert len(small.train_y) == 30 and torch.equal(small.train_x, noisy.train_x[:30])
    assert torch.equal(small.train_eval_x, noisy.train_eval_x[:30])
    assert torch.equal(small.test_x, noisy.test_x)  # the held-out set is kept whole
    assert noisy.subset(0) is noisy


def test_stopping_on_the_heldout_set_uses_the_heldout_labels():
    from gato.experiments.pathnet.digits import BinaryTask
    from gato.experiments.pathnet.supervised import SupervisedConfig, learn_task

    g = torch.Generator().manual_seed(0)
    x = torch.rand(200, 64, generator=g)
    y = (x[:, :32].sum(1) > x[:, 32:].sum(1)).long()
    # Held-out labels flipped: the training set is learnt, the held-out target is never met.
    task = BinaryTask("toy", x[:150], y[:150], x[150:], 1 - y[150:])
    common = dict(population=8, steps_per_pathway=20, target_accuracy=0.9, learning_rate=0.1)
    on_train = learn_task(
        PathNet(SupervisedConfig(**common).network(), g),
        task,
        SupervisedConfig(**common, max_generations=60),
        np.random.default_rng(0),
        g,
    )
    assert on_train.reached
    on_heldout = learn_task(
        PathNet(SupervisedConfig(**common).network(), g),
        task,
        SupervisedConfig(**common, max_generations=15, stop_on="heldout"),
        np.random.default_rng(0),
        g,
    )
    assert not on_heldout.reached and on_heldout.generations == 15
    assert on_heldout.stop_accuracy == on_heldout.test_accuracy < 0.5


def test_supervised_config_checks_the_new_fields():
    from gato.experiments.pathnet.supervised import SupervisedConfig

    with pytest.raises(ValueError, match="noise"):
        SupervisedConfig(noise=1.0)
    with pytest.raises(ValueError, match="train_examples_b"):
        SupervisedConfig(train_examples_b=-1)
    with pytest.raises(ValueError, match="stop_on"):
        SupervisedConfig(stop_on="test")


def test_task_names_may_name_digit_sets():
    from gato.experiments.pathnet.digits import _parse_task, parse_pair

    assert _parse_task("3v8") == ((3,), (8,))
    assert _parse_task("02468v13579") == ((0, 2, 4, 6, 8), (1, 3, 5, 7, 9))
    assert _parse_task("97v0") == ((7, 9), (0,))  # each set sorted, sides kept
    assert parse_pair("02468v13579:3v8") == ("02468v13579", "3v8")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("3v3", "both sides"),
        ("012v2", r"both sides"),
        ("33v8", "repeats"),
        ("3v", "expected"),
        ("v8", "expected"),
        ("3v8v9", "expected"),
        ("3-8", "expected"),
        ("3vx", "expected"),
        ("3v\u00b2", "expected"),  # a superscript two is a str.isdigit() digit, not a class
    ],
)
def test_bad_task_names_are_named(name, message):
    from gato.experiments.pathnet.digits import _parse_task, parse_pair

    with pytest.raises(ValueError, match=message) as err:
        _parse_task(name)
    assert repr(name) in str(err.value)
    with pytest.raises(ValueError, match=message):
        parse_pair(f"3v8:{name}")


def test_set_tasks_hold_every_image_of_their_digits_with_the_right_labels():
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits

    from gato.experiments.pathnet.digits import load_digits_task

    counts = np.bincount(load_digits().target, minlength=10)
    parity = load_digits_task("02468v13579", noise=0.2)
    n = len(parity.train_y) + len(parity.test_y)
    assert n == counts.sum() == 1797
    assert len(parity.test_y) == round(0.25 * n)
    assert int(parity.train_y.sum() + parity.test_y.sum()) == counts[::2].sum()
    small = load_digits_task("01234v56789")
    assert int(small.train_y.sum() + small.test_y.sum()) == counts[:5].sum()
    # Labels follow the digit: the image sets of "3v8" and "38v0" differ only by the zeros.
    sub = load_digits_task("38v0")
    assert len(sub.train_y) + len(sub.test_y) == counts[[0, 3, 8]].sum()
    assert float(sub.train_y.float().mean()) > 0.5


def test_single_digit_tasks_keep_their_images_split_and_noise():
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits

    from gato.experiments.pathnet.digits import load_digits_task, salt_and_pepper

    # What load_digits_task did before tasks could name sets, written out.
    digits = load_digits()
    for positive, negative in ((3, 8), (8, 3), (1, 7)):
        keep = np.isin(digits.target, (positive, negative))
        x = digits.data[keep].astype(np.float32) / 16.0
        y = (digits.target[keep] == positive).astype(np.int64)
        order = np.random.default_rng(12345).permutation(len(y))
        x, y = torch.from_numpy(x[order]), torch.from_numpy(y[order])
        noisy = salt_and_pepper(x, 0.2, np.random.default_rng([positive, negative, 777]))
        n_test = int(round(0.25 * len(y)))
        task = load_digits_task(f"{positive}v{negative}", noise=0.2)
        assert torch.equal(task.train_x, x[n_test:]) and torch.equal(task.train_y, y[n_test:])
        assert torch.equal(task.test_x, noisy[:n_test]) and torch.equal(task.test_y, y[:n_test])
        assert torch.equal(task.train_eval_x, noisy[n_test:])


def test_reusing_task_a_across_pairs_gives_the_same_records():
    from gato.experiments.pathnet.digits import BinaryTask
    from gato.experiments.pathnet.supervised import SupervisedConfig, run_seed

    g = torch.Generator().manual_seed(0)
    x = torch.rand(120, 64, generator=g)
    tasks = {
        name: BinaryTask(name, x[:90], y[:90], x[90:], y[90:])
        for name, y in (
            ("0v1", (x[:, :32].sum(1) > x[:, 32:].sum(1)).long()),
            ("2v3", (x[:, ::2].sum(1) > x[:, 1::2].sum(1)).long()),
            ("4v5", (x[:, :16].sum(1) > x[:, 16:32].sum(1)).long()),
        )
    }
    config = SupervisedConfig(
        pairs=["0v1:2v3", "0v1:4v5"], population=4, steps_per_pathway=5, max_generations=4
    )

    def strip(record):  # wall-clock times differ between runs
        out = {k: v for k, v in record["A"].items() if k != "seconds"}
        return out, {
            c: {k: v for k, v in b.items() if k != "seconds"} for c, b in record["B"].items()
        }

    learned_a = {}
    first = run_seed(config, "0v1:2v3", 3, tasks, learned_a)
    assert set(learned_a) == {("0v1", 3)}
    reused = run_seed(config, "0v1:4v5", 3, tasks, learned_a)
    assert reused["A"]["seconds"] == first["A"]["seconds"]  # not learnt again
    assert strip(reused) == strip(run_seed(config, "0v1:4v5", 3, tasks))


def test_the_from_a_diagnostic_starts_at_a_pathway_and_leaves_the_other_conditions_alone():
    from gato.experiments.pathnet.digits import BinaryTask
    from gato.experiments.pathnet.supervised import SupervisedConfig, learn_task, run_seed

    g = torch.Generator().manual_seed(0)
    x = torch.rand(120, 64, generator=g)
    y = (x[:, :32].sum(1) > x[:, 32:].sum(1)).long()
    tasks = {n: BinaryTask(n, x[:90], y[:90], x[90:], y[90:]) for n in ("0v1", "2v3")}
    common = dict(pairs=["0v1:2v3"], population=4, steps_per_pathway=5, max_generations=3)
    both = run_seed(
        SupervisedConfig(**common, conditions=["pathnet", "from_a"]), "0v1:2v3", 1, tasks
    )
    alone = run_seed(SupervisedConfig(**common, conditions=["pathnet"]), "0v1:2v3", 1, tasks)
    for key in ("generations", "genotype", "train_accuracy"):
        assert both["B"]["pathnet"][key] == alone["B"]["pathnet"][key]
    assert both["B"]["from_a"]["frozen_unchanged"]
    # One tournament with a target of 0.5+ on a given population: its winner is one of them.
    config = SupervisedConfig(**{**common, "max_generations": 1})
    start = [np.full((3, 3), 7)] * 4
    run = learn_task(
        PathNet(config.network(), g), tasks["2v3"], config, np.random.default_rng(0), g, start
    )
    assert run.genotype == start[0].tolist()
    with pytest.raises(ValueError, match="from_a"):
        SupervisedConfig(conditions=["pathnet", "oracle"])
