"""Reinforcement learning: the IMPALA actor-learner (V-trace) that trains experts for tasks with no
scripted controller, and algorithm distillation.

Modules:
    vtrace          V-trace targets and policy-gradient advantages (pure function, time-major).
    networks        actor-critic networks (MLP, Atari CNN, Gaussian MLP) and the base class a
                    custom network derives from.
    spaces          a task's observation and action spaces as gymnasium spaces.
    runner          the unroll layout and the environment runner that fills an unroll.
    actors          shared-memory unroll buffers and weights, actor processes.
    learner         the IMPALA loss, the learner's update, checkpoints and policy export.
    impala          the configuration, `train(config, network_fn)` and the command line.
    ray_backend     the same actors as Ray actors, for many machines (optional extra [ray]).
    plots           a run's learning curve and summary.
"""
