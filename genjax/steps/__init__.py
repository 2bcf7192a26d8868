"""Training steps, one module per model family.

Each family module exposes the same functions, which is all `genjax.loop`,
`genjax.sample` and `genjax.evaluate` need:

  create_state(config, key, image_shape) -> State
  make_train_step(config) -> train_step(state, batch, key) -> (state, metrics)
  batches_per_step(config) -> int   batches drawn for one step
  validate_config(config) -> None   raises ValueError naming a bad key
  sample(state, key, num, config) -> images [num, H, W, C] in [-1, 1]
  make_evaluator(config, key, test_data) -> evaluate(state) -> (images, scalars)
      images: {name: uint8 [H, W, C]} for PNGs and TensorBoard; scalars: {name: float}
"""

from genjax.steps import gan, vae

FAMILIES = {"gan": gan, "vae": vae}


def get_family(name: str):
  try:
    return FAMILIES[name]
  except KeyError:
    raise ValueError(f"Unknown model family {name!r}; choose one of {sorted(FAMILIES)}.") from None
