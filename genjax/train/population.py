"""Populations: several models of one family trained as one program.

The members (genjax.train.members: seeds crossed with swept values) are
each the single run whose config is `members_of(config).configs[m]`: its
state is a slice of one pytree with a leading member axis, and one
`jax.vmap`-ed step, compiled once, updates them all.

  - Random keys: member m's init, train, data and evaluation keys are those
    of a single run with seed_m, so it draws the same batches and noise.
  - Swept numbers reach the step as traced values: optimiser numbers live
    in the optimiser states (genjax.optim), and the step reads the others
    (loss weights, EMA decay) from a config whose swept keys hold the
    member's value. Only float keys can be swept; a key the step branches
    on in Python is refused, naming it.
  - Devices: with at least as many devices as members (a multiple), the
    mesh gains a `member` axis and each device holds its members; otherwise
    every device holds all members and splits each member's batch.
  - A member whose losses or parameters become NaN/Inf is frozen at its last
    finite state (`healthy` [M] in the state); the others go on, and the
    loop says which member, by index, seed and values. With
    `population.stop_on_nan=True` the run stops instead, as a single run
    does.

The state's `step` is shared by all members. `wrap` offers all this as a
`Family` of its own, so the loop that trains one model trains a population
unchanged; `resolve` is the family a config trains. docs/population.md has
the details and measurements.
"""

import dataclasses
from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from genjax import configs, memory, models, parallel, viz
from genjax.models.sampling import Sampler
from genjax.train import evaluation
from genjax.train.members import (Members, active, members_of, parse_sweep,
                                   traced_config)

MEMBER_AXIS = "member"
Config = ml_collections.ConfigDict


@flax.struct.dataclass
class PopulationState:
  members: Any  # the family's state, every leaf [M, ...] but `step` (shared)
  healthy: jax.Array  # [M] bool: False once a member's losses or parameters were NaN/Inf

  @property
  def step(self):
    return self.members.step


def member_axes(state) -> Any:
  """vmap axes of a family state: 0 for every leaf, None (shared) for `step`."""
  return jax.tree.map(lambda _: 0, state).replace(step=None)


def _map(fn, axes, *trees):
  return jax.tree.map(fn, axes, *trees, is_leaf=lambda x: x is None)


def member_state(state: PopulationState, m: int):
  """The family state of member `m`."""
  return _map(lambda a, x: x if a is None else x[m], member_axes(state.members), state.members)


def make_mesh(devices, num_members: int) -> Mesh:
  """(member, data) when the devices of one process can hold the members (a
  multiple of their count, at least as many); else the 1-D `data` mesh."""
  devices = jax.devices() if devices is None else list(devices)
  n = len(devices)
  # In a multi-process run every process holds every member (the loop reads
  # members' values on the host), and the batches are split over all devices.
  if jax.process_count() == 1 and num_members > 1 and n >= num_members and n % num_members == 0:
    return Mesh(np.asarray(devices).reshape(num_members, n // num_members),
                (MEMBER_AXIS, parallel.DATA_AXIS), axis_types=(AxisType.Auto,) * 2)
  return parallel.make_mesh(devices)


def _member_spec(mesh: Mesh):
  return MEMBER_AXIS if MEMBER_AXIS in mesh.axis_names else None


def state_sharding(mesh: Mesh, state) -> Any:
  """Shardings of a population state: members split over the `member` axis."""
  spec = _member_spec(mesh)
  axes = member_axes(state.members)
  members = _map(lambda a, _: NamedSharding(mesh, P() if a is None else P(spec)),
                 axes, state.members)
  return PopulationState(members=members, healthy=NamedSharding(mesh, P(spec)))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """[M, n, B, ...] batches: members over `member`, examples over `data`."""
  return NamedSharding(mesh, P(_member_spec(mesh), None, parallel.DATA_AXIS))


def _keys(members_: Members) -> jax.Array:
  """[M, 4] keys per member: init, train, data, eval, as in a single run."""
  return jnp.stack([jax.random.split(jax.random.key(seed), 4) for seed in members_.seeds])


def _numbers(members_: Members) -> dict:
  return {k: jnp.asarray(list(v), jnp.float32) for k, v in members_.swept.items()}


def _untraceable(key_names, error: Exception) -> ValueError:
  return ValueError(
      f"config.population.sweep: {' or '.join(key_names)} cannot differ between members of "
      f"one program: the model's code needs its value in Python ({type(error).__name__}). "
      "Sweep it with separate runs.")


# A step holds the state it was given and about as much again (the gradients,
# the new moments and parameters): what a population needs to train, per member.
TRAIN_COPIES = 2


def check_memory(family, members_: Members, image_shape, num_classes: int, mesh: Mesh,
                 copies: int = TRAIN_COPIES) -> None:
  """Refuses a population whose states would not fit in memory, before any is
  allocated: `copies` x the members x one member's state (parameters,
  optimiser moments, EMA: `jax.eval_shape`, nothing allocated), against the
  memory free where the state lives (genjax.memory.available)."""
  base = members_.configs[0]
  one = jax.eval_shape(lambda k: family.create_state(base, k, image_shape, num_classes),
                       jax.random.key(0))
  per_member = memory.state_bytes(one)
  devices = list(mesh.devices.flat)
  groups = mesh.shape.get(MEMBER_AXIS, 1)  # device groups that split the members
  if devices[0].platform == "cpu":  # the devices share the host's memory
    holders = len(devices) // groups  # copies of each member, one per device of its group
  else:
    holders = 1 / groups  # each device holds its group's share of the members
  per_member_needed = copies * per_member * holders
  needed = per_member_needed * len(members_)
  free, where = memory.available(devices)
  if needed <= free:
    return
  fit = int(free // per_member_needed)
  how = (f"--config.population.seeds={fit}" if not members_.swept else
         f"fewer seeds or sweep values (at most {fit} members)")
  raise ValueError(
      f"config.population: {len(members_)} members need about {memory.describe(needed)} "
      f"({copies} x {memory.describe(per_member)} of state per member: parameters, optimiser "
      f"moments and averages, held with the step's new values), but "
      f"{memory.describe(free)} is free ({where}). At most {fit} members fit: use {how}"
      + (", or split them over several runs." if fit else "; the model alone does not fit."))


def create_state(family, members_: Members, image_shape, num_classes: int,
                 mesh: Mesh | None = None, copies: int = TRAIN_COPIES) -> PopulationState:
  """The members' initial states, stacked (call inside jit). With `mesh`,
  first refuses a population that would not fit in memory (`check_memory`)."""
  if mesh is not None:
    check_memory(family, members_, image_shape, num_classes, mesh, copies)
  base = members_.configs[0]

  def one(key, numbers):
    return family.create_state(traced_config(base, numbers), key, image_shape, num_classes)

  try:
    states = jax.vmap(one)(_keys(members_)[:, 0], _numbers(members_))
  except (jax.errors.ConcretizationTypeError, jax.errors.TracerBoolConversionError) as e:
    raise _untraceable(members_.swept, e) from e
  states = states.replace(step=states.step[0])  # shared by the members
  return PopulationState(members=states, healthy=jnp.ones((len(members_),), bool))


def _all_finite(tree) -> jax.Array:
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
            if jnp.issubdtype(x.dtype, jnp.inexact)]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def choose_layout(layout: str, mesh: Mesh) -> str:
  """`vmap` (one batched program) or `loop` (the members' steps one after
  another in the same compiled call). `auto`: vmap on accelerators and when
  the members are sharded over devices; loop on a CPU that holds them all,
  where XLA runs the batched (grouped) convolutions of vmap about half as
  fast as the members one by one (docs/population.md)."""
  if layout != "auto":
    return layout
  cpu = mesh.devices.flat[0].platform == "cpu"
  return "loop" if cpu and MEMBER_AXIS not in mesh.axis_names else "vmap"


def make_train_step(family, members_: Members, mesh: Mesh):
  """(population state, batch [M, n, B, ...], unused key) -> (state, metrics
  {name: [M]}, with `healthy`). Member m's key is fold_in(train_key_m, step)."""
  base = members_.configs[0]
  train_keys = _keys(members_)[:, 1]
  numbers = _numbers(members_)
  spmd = _member_spec(mesh)
  layout = choose_layout(members_.layout, mesh)

  def one(state, batch, key, numbers):
    return family.make_train_step(traced_config(base, numbers))(state, batch, key)

  def step(pop: PopulationState, batch, key):
    del key  # each member's own, below
    keys = jax.vmap(lambda k: jax.random.fold_in(k, pop.step))(train_keys)
    axes = member_axes(pop.members)
    try:
      if layout == "loop":  # the members one after another, each as a single run
        outs = [one(member_state(pop, m), jax.tree.map(lambda x: x[m], batch), keys[m],
                    {k: v[m] for k, v in numbers.items()}) for m in range(len(members_))]
        new = _map(lambda a, *xs: xs[0] if a is None else jnp.stack(xs), axes,
                   *[o[0] for o in outs])
        metrics = jax.tree.map(lambda *xs: jnp.stack(xs), *[o[1] for o in outs])
      else:
        new, metrics = jax.vmap(one, in_axes=(axes, 0, 0, 0), out_axes=(axes, 0),
                                spmd_axis_name=spmd)(pop.members, batch, keys, numbers)
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerBoolConversionError) as e:
      raise _untraceable(members_.swept, e) from e
    finite = jax.vmap(lambda s, m: _all_finite((s, m)), in_axes=(axes, 0))(new, metrics)
    healthy = pop.healthy & finite

    def keep(a, n, o):
      if a is None:
        return n
      return jnp.where(healthy.reshape((-1,) + (1,) * (n.ndim - 1)), n, o)

    members_state = _map(keep, axes, new, pop.members)
    return PopulationState(members=members_state, healthy=healthy), {**metrics,
                                                                     "healthy": healthy}

  return step


def make_draw_batch(family, members_: Members, config: Config):
  """draw(dataset, step, _, batch_size, num_batches) -> each member's batch of
  the step, from its own data key: [M, n, B, ...]."""
  draw = family.make_draw_batch(config)
  data_keys = _keys(members_)[:, 2]

  def draw_members(dataset, step, data_key, batch_size, num_batches):
    del data_key
    return jax.vmap(lambda k: draw(dataset, step, k, batch_size, num_batches))(data_keys)

  return draw_members


DIVERGED_AT = "diverged_at"


def make_metric_reader(members_: Members, config: Config, state: PopulationState) -> Callable:
  """read(stacked {name: [k, M]} with `healthy`, first, last, log) -> {name:
  mean over healthy members, 'name/member_m': member m's mean}. A member
  that turned NaN/Inf in the call is reported and frozen, and the step at
  which it did is returned as 'diverged_at/member_m' (`DIVERGED_AT`); the
  run stops (Diverged) when config.population.stop_on_nan is set or no
  member is left."""
  was_healthy = np.asarray(jax.device_get(state.healthy))

  def read(stacked: dict, first: int, last: int, log) -> dict[str, float]:
    nonlocal was_healthy
    stacked = dict(stacked)
    healthy_steps = stacked.pop("healthy")  # [k, M]: healthy after each step
    healthy = healthy_steps[-1]
    diverged = {}
    for m in np.flatnonzero(was_healthy & ~healthy):
      at = first + 1 + int(np.argmin(healthy_steps[:, m]))
      diverged[f"{DIVERGED_AT}/member_{int(m)}"] = float(at)
      what = members_.describe(int(m))
      if config.population.stop_on_nan:
        raise models.Diverged(
            f"{what} became NaN/Inf at step {at}",
            advice="Rerun without --config.population.stop_on_nan to go on with the other "
            "members.")
      log(f"{what} became NaN/Inf at step {at}: it keeps its last finite state and no longer "
          f"trains; the other {int(healthy.sum())} go on.")
    if not healthy.any():
      raise models.Diverged(
          f"Every member of the population became NaN/Inf by step {last}",
          advice="Lower the learning rates (see --allow_changes) or start over in a new "
          "--workdir.")
    was_healthy = healthy
    out = dict(diverged)
    for name, values in stacked.items():  # [k, M]; steps after a member's NaN left out
      per_member = {int(m): float(np.mean(values[healthy_steps[:, m], m]))
                    for m in np.flatnonzero(healthy)}
      out[name] = float(np.mean(list(per_member.values())))
      out.update({f"{name}/member_{m}": v for m, v in per_member.items()})
    return out

  return read


GRID_COLUMNS = 10  # samples per member in the `members` grid


def make_evaluator(family, members_: Members, key: jax.Array, test):
  """state -> (grids, scalars): every healthy member evaluated as a single run
  would be, with the same keys (the same latent draws). Scalars are the means
  over the members, with each member's value as 'name/member_m'; the grid
  `members` has one row of samples per member (families without a sampler:
  each grid, members stacked)."""
  base = members_.configs[0]
  evaluate_one = evaluation.make_evaluator(family, base, key, test)
  rows = None if family.sample is None else Sampler(family.sample, base, GRID_COLUMNS)

  def evaluate(state: PopulationState):
    healthy = np.asarray(jax.device_get(state.healthy))
    per_member, grids, row_images = {}, {}, []
    for m in np.flatnonzero(healthy):
      one = member_state(state, int(m))
      images, scalars = evaluate_one(one)
      for name, value in scalars.items():
        per_member.setdefault(name, {})[int(m)] = value
      for name, image in images.items():
        grids.setdefault(name, []).append(image)
      if rows is not None:
        row_images.append(rows(one, GRID_COLUMNS, jax.random.fold_in(key, 2)))
    if row_images:
      grids = {"members": viz.grid(np.concatenate(row_images), ncol=GRID_COLUMNS)}
    else:
      grids = {name: viz.grid(np.stack(images), ncol=1, pad=4) for name, images in grids.items()}
    scalars = {}
    for name, values in per_member.items():
      scalars[name] = float(np.mean(list(values.values())))
      scalars.update({f"{name}/member_{m}": v for m, v in values.items()})
    return grids, scalars

  return evaluate


def _validate(family, members_: Members, config: Config) -> None:
  """The family's checks of the population's config, of member 0, of the
  member with the largest seed, and of each swept value on its own (no
  family relates two float keys, the only ones swept): the work grows with
  the values listed, not with their combinations."""
  family.validate_config(config)
  checked = {0, len(members_) - 1}
  stride = max(config.population.seeds, 1)  # members between two values of a swept key
  for values in reversed(list(parse_sweep(config.population.sweep, config).values())):
    checked.update(i * stride for i in range(len(values)))  # the others' first values
    stride *= len(values)
  for m in sorted(checked):
    member_config = members_.configs[m]
    configs.check_common(member_config)
    family.validate_config(member_config)


def wrap(family, config: Config, devices=None, copies: int = TRAIN_COPIES):
  """`family` trained as the population `config.population` describes: a
  Family whose state is a PopulationState and whose step updates every
  member. Creating its state first checks that `copies` of it fit in memory
  (`check_memory`; readers that only restore it pass 1)."""
  members_ = members_of(config)
  mesh = make_mesh(devices, len(members_))
  return dataclasses.replace(
      family,
      name=f"{family.name} population",
      create_state=lambda c, key, shape, classes: create_state(family, members_, shape, classes,
                                                               mesh, copies),
      make_train_step=lambda c: make_train_step(family, members_, mesh),
      validate_config=lambda c: _validate(family, members_, c),
      make_evaluator=lambda c, key, test: make_evaluator(family, members_, key, test),
      sample=None,
      evaluate_metrics=None,
      metric_options=(),
      make_draw_batch=lambda c: make_draw_batch(family, members_, c),
      streams=False,
      make_mesh=lambda devices_: mesh,
      state_sharding=state_sharding,
      batch_sharding=batch_sharding,
      make_metric_reader=lambda c, state: make_metric_reader(members_, c, state),
      num_models=len(members_),
      describe=lambda mesh_: (
          f"Population: {len(members_)} members "
          f"({', '.join(members_.describe(m) for m in range(len(members_)))}); mesh "
          f"{dict(mesh_.shape)}."),
  )


def resolve(config: Config, devices=None, copies: int = TRAIN_COPIES):
  """The family `config` trains: the registered `config.family`, wrapped as a
  population when `config.population` asks for several members (`copies`:
  see `wrap`)."""
  family = models.get(config.family)
  return wrap(family, config, devices, copies) if active(config) else family
