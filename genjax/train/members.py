"""Who the members of a population are: seeds crossed with swept values.

`--config.population.seeds=8` gives 8 members with seeds seed, seed+1, ...;
`--config.population.sweep='opt.g_lr=1e-4,2e-4,4e-4'` one member per value
(several keys, separated by spaces, are crossed), each with every seed.
Member m is the single run whose config is `members_of(config).configs[m]`
(its seed and swept values, population off). How they train as one program
is genjax.train.population.
"""

import collections.abc
import copy
import dataclasses
import math
import operator
from typing import Any, Callable, Sequence

import ml_collections
import numpy as np

from genjax import configs

Config = ml_collections.ConfigDict

# How the members' steps are laid out in one program (genjax.train.population.choose_layout).
LAYOUTS = ("auto", "vmap", "loop")


def active(config: Config) -> bool:
  return config.population.seeds > 1 or bool(config.population.sweep)


def parse_sweep(text: str, config: Config) -> dict[str, list[float]]:
  """'opt.g_lr=1e-4,2e-4 ema_decay=0,0.999' -> {key: [values]}; errors name
  the bad part."""
  leaves = dict(configs.leaves(config))
  out = {}
  for part in text.replace(";", " ").split():
    key, sep, values = part.partition("=")
    if not sep or not values:
      raise ValueError(f"config.population.sweep: {part!r} must read KEY=V1,V2,... "
                       "(e.g. opt.g_lr=1e-4,2e-4).")
    if key not in leaves:
      raise ValueError(f"config.population.sweep: {key!r} is not a config key.")
    if key.startswith("population.") or key == "seed":
      raise ValueError(f"config.population.sweep: {key!r} cannot be swept (seeds: "
                       "config.population.seeds).")
    if not isinstance(leaves[key], float) or isinstance(leaves[key], bool):
      raise ValueError(
          f"config.population.sweep: {key}={leaves[key]!r} is not a float; only numbers "
          "the step computes with (learning rates, loss weights, decays) can differ "
          "between members of one program. Sweep it with separate runs.")
    if key in out:
      raise ValueError(f"config.population.sweep: {key!r} is given twice; list all its "
                       f"values once ({key}=V1,V2,...).")
    try:
      out[key] = [float(v) for v in values.split(",")]
    except ValueError:
      raise ValueError(f"config.population.sweep: {part!r} has a value that is not a "
                       "number.") from None
    if len(set(out[key])) != len(out[key]):
      raise ValueError(f"config.population.sweep: {part!r} repeats a value.")
  return out


class _Column(collections.abc.Sequence):
  """A read-only list whose item m is `item(m)`, computed when read: a
  population's per-member configs and values take no memory until used, so
  that a population too large to train is refused (`check_memory`) before
  anything of its size is built."""

  def __init__(self, length: int, item: Callable[[int], Any]):
    self._length, self._item = length, item

  def __len__(self):
    return self._length

  def __getitem__(self, m):
    if isinstance(m, slice):
      return [self._item(i) for i in range(*m.indices(self._length))]
    m = operator.index(m)
    if m < 0:
      m += self._length
    if not 0 <= m < self._length:
      raise IndexError(f"member {m} of {self._length}")
    return self._item(m)

  def __eq__(self, other):
    if not isinstance(other, collections.abc.Sequence) or isinstance(other, str):
      return NotImplemented
    return len(self) == len(other) and all(a == b for a, b in zip(self, other))

  __hash__ = None

  def __repr__(self):
    if self._length <= 10:
      return repr(list(self))
    return f"[{self._item(0)!r}, ..., {self._item(self._length - 1)!r}] ({self._length} items)"


@dataclasses.dataclass(frozen=True)
class Members:
  """The members of a population, in order: every swept combination, each
  with every seed. The sequences are computed per member when read."""

  configs: Sequence  # configs[m]: member m's concrete single-run config
  seeds: Sequence[int]
  swept: dict  # key -> [value per member]
  layout: str = "auto"  # config.population.layout

  def __len__(self):
    return len(self.seeds)

  def describe(self, m: int) -> str:
    """'member 3 (seed 1, opt.g_lr=0.0002)'."""
    values = "".join(f", {k}={v[m]:g}" for k, v in self.swept.items())
    return f"member {m} (seed {self.seeds[m]}{values})"


def members_of(config: Config) -> Members:
  """The population's members; a single one when the population is off."""
  pop = config.population
  if pop.layout not in LAYOUTS:
    raise ValueError(f"config.population.layout={pop.layout!r}; choose one of {list(LAYOUTS)}.")
  configs.check_population_seeds(pop.seeds)
  sweep = parse_sweep(pop.sweep, config)
  num_seeds = max(pop.seeds, 1)
  values = list(sweep.values())
  count = num_seeds * math.prod(len(v) for v in values)
  base = copy.deepcopy(config)

  def combo(m: int) -> list[float]:  # member m's swept values, in itertools.product order
    c, out = m // num_seeds, []
    for v in reversed(values):
      c, i = divmod(c, len(v))
      out.append(v[i])
    return out[::-1]

  seeds = _Column(count, lambda m: base.seed + m % num_seeds)

  def member_config(m: int) -> Config:
    member = copy.deepcopy(base)
    member.seed = seeds[m]
    configs.apply_overrides(member, dict(zip(sweep, combo(m))))
    member.population.seeds, member.population.sweep = 0, ""
    member.population.layout = "auto"
    return member

  swept = {k: _Column(count, lambda m, j=j: combo(m)[j]) for j, k in enumerate(sweep)}
  return Members(_Column(count, member_config), seeds, swept, pop.layout)


def traced_config(config: Config, numbers: dict) -> Config:
  """`config` with the swept keys holding `numbers` (traced scalars)."""
  config = copy.deepcopy(config)
  with config.ignore_type():
    configs.apply_overrides(config, numbers)
  return config


def summarize(values: list[float]) -> dict:
  """mean, std (the sample std, n - 1), min and max over members. The std of
  a single value is undefined: None (null in JSON), never 0, which would
  claim that the members agree."""
  v = np.asarray(values, np.float64)
  return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else None,
          "min": float(v.min()), "max": float(v.max())}


# The population as a Family of its own: the loop trains it unchanged.

# The metric the reader adds, in the call where member m turns NaN/Inf, as
# 'diverged_at/member_m': the step at which it did. The loop writes it to
# TensorBoard as train/diverged_at/member_m, where `genjax.sample` and
# `genjax.evaluate` find it (genjax.train.workdir.recorded_divergences).
