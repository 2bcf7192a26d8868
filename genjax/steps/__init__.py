"""Training steps, one module per model family: pure and jit-able.

A step module defines its state pytree (a `flax.struct.dataclass` of
TrainStates), `create_state`, `make_train_step(config)` returning
`train_step(state, batch, key) -> (state, metrics)`, `sample` where it
generates, and `validate_config`. It imports only `genjax.nn`,
`genjax.losses`, `genjax.optim`, `genjax.state` and helpers here
(`augment`: DiffAugment for the GAN step): it knows nothing of files,
weights on disk or images. `genjax.families` puts each together with its evaluator
and data hooks into the `Family` that the loop and the command lines use.
"""
