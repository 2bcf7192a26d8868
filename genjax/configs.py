"""The config schema: what every config holds and how it may change.

An experiment module defines `get_config(preset=None)`, whose commented
defaults are its keys, and a `PRESETS` dict {name: (overrides,
description)}, where overrides maps dotted keys ('opt.g_lr') to values.
`--config=experiments/X.py:NAME` selects a preset, and `NAME,tiny` applies
several in order (here: the preset on the tiny networks that tests and
notebooks use). The rules every config shares live here:

  POSITIVE_INTS, check_common   the keys every experiment has, and their checks
  add_shared_keys               the `population` and `precision` keys every experiment gets
  RESUMABLE_KEYS                what a resumed run may change without --allow_changes
  ADDED_KEYS, upgrade           keys added after runs were written, with the value
                                that reproduces those runs: a config.json is
                                upgraded once, when read, so code reads every key
                                directly
  schema                        every key of an experiment: default, type, resume
                                rule and comment (`python -m genjax.configs
                                experiments/gan_mnist.py[:PRESET]`)

(The module is `configs`, not `config`: every function in genjax takes an
argument named `config`.) It imports nothing else of genjax, so reading a
config is cheap.
"""

import copy
import difflib
import importlib.util
import json
import math
import re
import sys
from pathlib import Path

import ml_collections

# config.precision's choices: the compute dtype of the networks (genjax.nn.precision).
PRECISIONS = ("float32", "bfloat16")

# Keys every experiment has, all positive integers.
POSITIVE_INTS = ("batch_size", "num_steps", "eval_every", "checkpoint_every",
                 "steps_per_call", "keep_checkpoints", "num_eval_samples")


# Config keys that may change when a run resumes; any other change is an error
# unless named in --allow_changes.
RESUMABLE_KEYS = frozenset({
    "num_steps", "eval_every", "checkpoint_every", "keep_checkpoints", "steps_per_call",
    "num_eval_samples", "metrics_num_samples", "grid_scale", "data.data_dir", "data.idx_dir",
    "data.download", "data.pipeline", "data.threads", "population.layout",
    "population.stop_on_nan",
})

# Keys added after runs were written without them, per family ("*": every
# family; "folder": every config with data.path), with the value that does what those runs did. A new key joins this
# table when it is added, so that older workdirs resume and sample unchanged.
ADDED_KEYS = {
    "*": {"grid_scale": 1, "population.seeds": 0, "population.sweep": "",
          "population.stop_on_nan": False, "population.layout": "auto",
          "precision": "float32"},
    "gan": {"metrics_num_samples": 0, "conditional": False, "clip_value": 0.0,
            "gp_weight": 0.0, "r1_gamma": 0.0, "ema_decay": 0.0, "diffaug": "",
            "opt.name": "adam", "model.icnr": False, "model.spectral_norm": False,
            "data.pipeline": "device", "data.threads": 4, "data.limit": 0,
            "augment": "none", "ada_target": 0.6, "ada_kimg": 100.0, "ada_p_init": 0.0,
            "lecam_weight": 0.0, "model.norm": "batch"},
    "vae": {"metrics_num_samples": 0, "iwae_k_train": 0, "final_iwae_k": 0,
            "model.weight_init": "", "opt.schedule": "", "opt.variant": "",
            "opt.examples_per_pass": 0, "data.pipeline": "device", "data.threads": 4},
    "pix2pix": {"adv_weight": 1.0, "known_weight": 0.1, "data.scale": 4, "data.mask": "centre"},
    # Configs of a user's image folder (those with data.path), whatever the family.
    "folder": {"data.background": "none"},
}


def upgrade(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A copy of a config read from an older run's config.json with the keys
  it lacks (ADDED_KEYS) set to the values that reproduce that run."""
  config = copy.deepcopy(config)
  family = config.get("family", "")
  with config.unlocked():
    folder = ADDED_KEYS["folder"] if "path" in config.get("data", {}) else {}
    for key, value in {**ADDED_KEYS["*"], **ADDED_KEYS.get(family, {}), **folder}.items():
      *parents, leaf = key.split(".")
      node = config
      for p in parents:
        if p not in node:
          node[p] = ml_collections.ConfigDict()
        node = node[p]
      if leaf not in node:
        node[leaf] = value
  return config


def unknown_key_message(key: str, config: ml_collections.ConfigDict, where: str) -> str:
  """'config has no key X; the closest are A, B (keys: <where>)'."""
  keys = [k for k, _ in leaves(config)]
  close = difflib.get_close_matches(key, keys, n=3, cutoff=0.5)
  hint = f"; the closest are {', '.join(close)}" if close else ""
  return f"the config has no key {key!r}{hint} (the keys are in {where})."


def apply_overrides(config: ml_collections.ConfigDict, overrides: dict):
  """Sets dotted keys ('opt.g_lr') of `config` in place and returns it; an
  unknown key is a KeyError naming it, a value of another type a TypeError."""
  keys = {k for k, _ in leaves(config)}
  for key in overrides:
    if key not in keys:
      raise KeyError(f"config has no key {key!r}")
  config.update_from_flattened_dict(overrides)
  return config


def parse_assignments(items, config: ml_collections.ConfigDict) -> dict:
  """['model.g_width=32', 'batch_size=64'] -> {key: value}, each value read as
  the type of the config's present value (bool, int, float or str); errors
  name the bad item."""
  known = dict(leaves(config))
  out = {}
  for item in items:
    key, sep, text = item.partition("=")
    if not sep or not key or not text:
      raise ValueError(f"{item!r} must read KEY=VALUE (e.g. model.g_width=32).")
    if key not in known:
      raise ValueError(f"{item!r}: the config has no key {key!r}.")
    current = known[key]
    try:
      if isinstance(current, bool):
        if text.lower() not in ("true", "false"):
          raise ValueError
        value = text.lower() == "true"
      elif isinstance(current, (int, float, str)):
        value = type(current)(text)
      else:
        raise TypeError
    except ValueError:
      raise ValueError(f"{item!r}: {key} is a {type(current).__name__} "
                       f"(now {current!r}); {text!r} is not one.") from None
    except TypeError:
      raise ValueError(f"{item!r}: {key} is a {type(current).__name__}; only "
                       "numbers, booleans and strings can be set this way.") from None
    out[key] = value
  return out


def add_shared_keys(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Adds the keys every experiment has beyond its own: `population`
  (genjax.train.population), off, and `precision`, float32."""
  if "precision" not in config:
    # float32 | bfloat16: compute dtype of the networks; parameters, optimiser
    # state, losses and statistics stay float32
    config.precision = "float32"
  if "population" not in config:
    config.population = ml_collections.ConfigDict()
    config.population.seeds = 0  # members with seeds seed, seed+1, ...; 0 = one model
    # one member per value, crossed with the seeds: 'opt.g_lr=1e-4,2e-4 ema_decay=0,0.999'
    config.population.sweep = ""
    config.population.stop_on_nan = False  # a member's NaN/Inf stops the run (else: frozen)
    config.population.layout = "auto"  # auto | vmap (one batched program) | loop (in turn)
  return config


def with_presets(config: ml_collections.ConfigDict, presets: dict,
                 names: str | None) -> ml_collections.ConfigDict:
  """`config` with the shared keys (`add_shared_keys`) and the overrides of
  each comma-separated preset in `names` applied in order; an unknown name
  is a ValueError listing the choices."""
  add_shared_keys(config)
  for name in (names or "").split(","):
    name = name.strip()
    if not name:
      continue
    if name not in presets:
      raise ValueError(f"Unknown preset {name!r}; choose one of {sorted(presets)} "
                       "(several: NAME,tiny).")
    apply_overrides(config, presets[name][0])
  return config


def preset_workdir(default_workdir: str, names: str | None) -> str:
  """runs/gan_mnist -> runs/gan_mnist_wgan_gp (runs/gan_mnist_wgan_gp_tiny for 'wgan_gp,tiny')."""
  names = "_".join(n.strip() for n in (names or "").split(",") if n.strip())
  return f"{default_workdir}_{names}" if names else default_workdir


def leaves(config, prefix=""):
  for key, value in config.items():
    if isinstance(value, ml_collections.ConfigDict):
      yield from leaves(value, f"{prefix}{key}.")
    else:
      yield f"{prefix}{key}", value


def check_common(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the first bad value among the keys every
  experiment shares: the counts, the seed, the population's seed count,
  finite numbers everywhere, and the optimiser's learning rates and Adam
  betas, and config.precision by name. A family's own keys are checked by
  its `validate_config`."""
  for key in POSITIVE_INTS:
    value = config.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
      raise ValueError(f"config.{key}={value!r} must be a positive integer.")
  precision = config.get("precision", "float32")
  if precision not in PRECISIONS:
    raise ValueError(f"config.precision={precision!r} is not a precision; choose one of "
                     f"{list(PRECISIONS)}.")
  seed = config.get("seed")
  if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63:
    raise ValueError(f"config.seed={seed!r} must be an integer in [0, 2**63).")
  if "population" in config:
    check_population_seeds(config.population.get("seeds", 0))
    sweep = config.population.get("sweep", "")
    if not isinstance(sweep, str):
      raise ValueError(f"config.population.sweep={sweep!r} must be a string such as "
                       "'opt.g_lr=1e-4,2e-4' ('' for none).")
  for key, value in leaves(config):
    if isinstance(value, float) and not math.isfinite(value):
      raise ValueError(f"config.{key}={value!r} must be a finite number.")
    leaf = key.rsplit(".", 1)[-1]
    if key.startswith("opt.") and leaf.endswith("lr") and not (
        isinstance(value, (int, float)) and value > 0):
      raise ValueError(f"config.{key}={value!r} must be a positive learning rate.")
    if key in ("opt.b1", "opt.b2") and not (isinstance(value, (int, float)) and 0 <= value < 1):
      raise ValueError(f"config.{key}={value!r} must be in [0, 1) (Adam's decay rates; "
                       "0.5/0.999 for DCGAN, 0.9/0.999 by default).")
    if key == "opt.eps" and not (isinstance(value, (int, float)) and value > 0):
      raise ValueError(f"config.{key}={value!r} must be positive.")


def check_population_seeds(seeds) -> None:
  """A ValueError unless `seeds` (config.population.seeds) is an integer >= 0."""
  if not isinstance(seeds, int) or isinstance(seeds, bool) or seeds < 0:
    raise ValueError(f"config.population.seeds={seeds!r} must be an integer >= 0 (0 or 1: one "
                     "model; N > 1: N members with seeds seed, ..., seed+N-1).")


def use_image_folder(config: ml_collections.ConfigDict, image_size: int):
  """Adds the keys of a user's image folder (genjax.data.folder) to config.data."""
  data = config.data
  data.name = "folder"  # a label for logs; the images come from data.path
  data.path = ""  # the folder of images (required), or "" with data.name of a prepared one
  data.image_size = image_size  # side of the square images: 28, 32, 64, 128 or 256
  data.channels = 3  # 1 (greyscale) or 3 (RGB)
  data.labels = "none"  # none | folders (first-level subfolders are classes)
  data.test_percent = 5  # images held out for evaluation, chosen by a hash of their path
  data.pipeline = "auto"  # on the devices up to 1 GiB of images, else streamed
  data.background = "white"  # under transparent pixels: white, black, #rrggbb or none (alpha dropped)
  config.metrics_num_samples = 0  # FID in training: Inception or the folder's network (evaluation.md)
  return config


_ASSIGNMENT = re.compile(r"^\s*(config|data)\.([\w.]+)\s*=[^#]*(?:#\s*(.+))?$")


def schema(config: ml_collections.ConfigDict, sources=()) -> list[dict]:
  """Every key of `config`: its value (the default of the config read), type,
  whether a resumed run may change it, and the comment beside its
  assignment in `sources` (the experiment's file; this module's shared keys
  are added)."""
  comments = {}
  for path in (*sources, __file__):
    above = []  # the comment lines just above an assignment
    for line in Path(path).read_text().splitlines():
      match = _ASSIGNMENT.match(line)
      if match:
        prefix, key, comment = match.groups()
        text = (comment or " ".join(above)).strip()
        if text:
          comments.setdefault(f"data.{key}" if prefix == "data" else key, text)
      above = above + [line.strip()[1:].strip()] if line.strip().startswith("#") else []
  return [{"key": key, "default": value, "type": type(value).__name__,
           "on resume": ("may change" if key in RESUMABLE_KEYS
                         else f"--allow_changes={key}"),
           "comment": comments.get(key, "")}
          for key, value in leaves(config)]


def main(argv: list[str]) -> int:
  """`python -m genjax.configs experiments/X.py[:PRESET]`: the schema as a table."""
  if len(argv) != 2 or argv[1].startswith("-"):
    print("usage: python -m genjax.configs experiments/<name>.py[:PRESET[,PRESET]]",
          file=sys.stderr)
    return 2
  path, _, preset = argv[1].partition(":")
  spec = importlib.util.spec_from_file_location("experiment_config", path)
  if spec is None or not Path(path).is_file():
    print(f"error: {path} is not an experiment file (experiments/<name>.py).", file=sys.stderr)
    return 1
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  rows = schema(module.get_config(preset or None), [path])
  width = max(len(r["key"]) for r in rows)
  for r in rows:
    default = json.dumps(r["default"])
    print(f"{r['key']:<{width}}  {default:<12} {r['type']:<5}  {r['on resume']:<{width + 16}}"
          f"  {r['comment']}".rstrip())
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
