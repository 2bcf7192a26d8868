"""Training steps, one module per model family.

Each family module exposes the same functions, which is all `genjax.loop`,
`genjax.sample` and `genjax.evaluate` need:

  create_state(config, key, image_shape, num_classes) -> State
  make_train_step(config) -> train_step(state, batch, key) -> (state, metrics)
  batches_per_step(config) -> int   batches drawn for one step
  validate_config(config) -> None   raises ValueError naming a bad key
  sample(state, key, num, config) -> images [num, H, W, C] in [-1, 1]
      (GANs also take labels=[num] when config.conditional)
  make_evaluator(config, key, test_data) -> evaluate(state) -> (images, scalars)
      images: {name: uint8 [H, W, C]} for PNGs and TensorBoard; scalars: {name: float}

Optional: `evaluate_metrics(state, config, test, key, ...)` for genjax.evaluate;
`load_split(config, split)`, `to_device(dataset, mesh)` and
`make_draw_batch(config)` where the data is not one image set (CycleGAN's two
domains).
"""

from genjax.steps import cyclegan, gan, vae

FAMILIES = {"cyclegan": cyclegan, "gan": gan, "vae": vae}


def get_family(name: str):
  try:
    return FAMILIES[name]
  except KeyError:
    raise ValueError(f"Unknown model family {name!r}; choose one of {sorted(FAMILIES)}.") from None
