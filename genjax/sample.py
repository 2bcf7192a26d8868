"""Generates images from a run's checkpoint.

  python -m genjax.sample --workdir runs/gan_mnist --num 1000 --out samples.npz
  python -m genjax.sample --workdir runs/gan_mnist --checkpoint best
  python -m genjax.sample --workdir runs/gan_mnist_cgan --labels 3,7   # conditional runs
  python -m genjax.sample --workdir runs/biggan_folder --labels city,sea --truncation 0.5
  python -m genjax.sample --workdir runs/gan_mnist_seeds --member 2     # population runs

The .npz file holds `images`: uint8 [N, H, W, C], and for conditional runs
`labels` [N] (the --labels list repeated, or every class in turn). --labels
names classes by number or, for a folder's classes, by name (run.json's
`class_names`). --truncation T draws z from the normal truncated to
[-T, T] (the truncation trick), for families whose sampler takes it. It is
written a batch at a time into a temporary file beside --out, renamed to
--out when complete: memory holds one batch whatever --num, and a count
whose images would not fit on the disk is refused before any is drawn.
"""

import functools
import inspect
import math
import os
import sys
import zipfile
from pathlib import Path

import jax
import numpy as np
from absl import app, flags, logging

from genjax import checkpoint, memory, runtime
from genjax.train import members as members_lib
from genjax.train import workdir as rundir
from genjax.models import sampling


class LabelCycle:
  """The labels [num] of a conditional run's samples: `classes` repeated,
  sliced as [start:stop] without building all of them."""

  def __init__(self, classes, num: int):
    self.classes, self.num = np.asarray(classes, np.int32), num

  def __len__(self):
    return self.num

  def __getitem__(self, where: slice) -> np.ndarray:
    start, stop, _ = where.indices(self.num)
    return self.classes[np.arange(start, stop) % len(self.classes)]

  def __array__(self, dtype=None, copy=None):
    return np.asarray(self[0:self.num], dtype)


def class_numbers(wanted, info: dict) -> list[int]:
  """--labels' items (class numbers, or names of run.json's `class_names`)
  as class numbers; a name the run does not have is a ValueError listing
  its classes."""
  names = info.get("class_names") or []
  out = []
  for item in wanted:
    if isinstance(item, str) and item in names:
      out.append(names.index(item))
    elif isinstance(item, int) or item.strip().lstrip("-").isdigit():
      out.append(int(item))
    elif names:
      raise ValueError(f"--labels: {item!r} is not a class of this run; its classes are "
                       f"{', '.join(names)}.")
    else:
      raise ValueError(f"--labels: {item!r} is not a class number, and this run's data has no "
                       f"class names; its classes are 0..{info['num_classes'] - 1}.")
  return out


def sample_labels(config, info: dict, num: int, wanted: list | None):
  """The labels [num] (a LabelCycle) for a conditional run (None for an
  unconditional one); `wanted`: class numbers or names (`class_numbers`)."""
  num_classes = info["num_classes"]
  wanted = class_numbers(wanted or [], info)
  if not config.get("conditional", False):
    if wanted:
      raise ValueError(f"--labels={','.join(map(str, wanted))}: this run is not conditional "
                       f"(config.conditional=False), so it takes no labels; its data has "
                       f"classes 0..{num_classes - 1}.")
    return None
  bad = [y for y in wanted or [] if not 0 <= y < num_classes]
  if bad:
    raise ValueError(f"--labels: {bad} out of range; the classes are 0..{num_classes - 1}.")
  return LabelCycle(wanted or np.arange(num_classes), num)


def check_truncation(truncation: float | None) -> None:
  """A ValueError unless `truncation` is None or in (0, 2]."""
  if truncation is not None and not 0 < truncation <= 2:
    raise ValueError(f"--truncation={truncation:g} must be in (0, 2] (0.5 is usual; smaller "
                     "trades variety for fidelity); omit it to sample the full normal.")


def with_truncation(family, config, truncation: float | None):
  """The family's sampler, with `truncation` where one is asked for; a
  ValueError for a family whose sampler takes none."""
  if truncation is None:
    return family.sample
  if "truncation" not in inspect.signature(family.sample).parameters:
    raise ValueError(f"--truncation={truncation:g}: the {config.family!r} family's sampler "
                     "takes no truncation; omit --truncation.")
  return functools.partial(family.sample, truncation=truncation)


def _prepare(workdir, num: int, seed: int, batch: int, checkpoint, labels, member,
             truncation=None):
  """(Sampler, state, key, labels or None, image shape) for `num` images."""
  check_truncation(truncation)
  config, info = rundir.read(workdir)
  rundir.check_member(config, member)
  if member is None and members_lib.active(config):
    raise ValueError(f"{workdir} holds a population of {len(members_lib.members_of(config))} "
                     "members (config.population); pick one with --member.")
  labels = sample_labels(config, info, num, labels)
  batch = min(batch, num)
  check_batch_memory(batch, info["image_shape"])
  if member is None:
    config, family, state = rundir.restore(workdir, checkpoint)
  else:
    config, family, state, diverged = rundir.restore_member(workdir, checkpoint, member)
    if diverged:  # sampled all the same, as asked, with that said
      print(f"WARNING: {diverged['message']} The images are of that state.", file=sys.stderr)
  if family.sample is None:
    raise ValueError(f"{workdir} holds a {config.family!r} run, which translates images and "
                     "draws no new ones; `python -m genjax.evaluate` measures it.")
  sampler = sampling.Sampler(with_truncation(family, config, truncation), config, batch)
  return sampler, state, jax.random.key(seed), labels, tuple(info["image_shape"])


def generate(workdir, num: int, seed: int = 0, batch: int = 500,
             checkpoint: str | int = "latest", labels: list | None = None,
             member: int | None = None, truncation: float | None = None):
  """(uint8 [num, H, W, C] images, labels [num] or None) from a checkpoint in
  `workdir`; of a population run, from member `member` (a diverged member is
  sampled with a warning on stderr naming the step it diverged at).
  `labels`: class numbers or names; `truncation`: the truncation trick's
  bound, for a family whose sampler takes one."""
  sampler, state, key, labels, _ = _prepare(workdir, num, seed, batch, checkpoint, labels,
                                            member, truncation)
  images = sampler(state, num, key, labels)
  return images, (None if labels is None else np.asarray(labels))


# Bytes per image a batch needs beyond its uint8 images: the float32 images
# the generator returns and a copy of them (a lower bound: the network's
# activations come on top).
_BATCH_BYTES_PER_PIXEL = 1 + 2 * 4


def check_batch_memory(batch: int, image_shape) -> None:
  """Refuses a --batch whose images alone would not fit in memory."""
  per_image = _BATCH_BYTES_PER_PIXEL * math.prod(image_shape)
  free, where = memory.available()
  if batch * per_image > free:
    raise ValueError(
        f"--batch={batch}: a batch of {batch} images {tuple(image_shape)} needs at least "
        f"{memory.describe(batch * per_image)} of memory, but {memory.describe(free)} is free "
        f"({where}); use --batch={max(1, min(500, free // per_image))} (500 is the default).")


def check_disk(out: Path, num: int, image_shape, labelled: bool) -> None:
  """Refuses a --num whose images (uncompressed) would not fit in --out's folder."""
  per_image = math.prod(image_shape) + (4 if labelled else 0)
  free = memory.disk_free(out.parent)
  if num * per_image > free:
    raise ValueError(
        f"--num={num}: {num} images {tuple(image_shape)} take up to "
        f"{memory.describe(num * per_image)} (uncompressed), but {out.parent} has "
        f"{memory.describe(free)} free; at most {free // per_image} fit (--num="
        f"{free // per_image}), or name an --out on a disk with more room.")


def _write_array(archive: zipfile.ZipFile, name: str, shape, dtype, chunks) -> None:
  """Writes `name`.npy into the .npz `archive` from `chunks` (arrays whose
  rows, in order, are the array's), one chunk in memory at a time."""
  dtype = np.dtype(dtype)
  size = math.prod(shape) * dtype.itemsize
  with archive.open(f"{name}.npy", "w", force_zip64=size >= 2**31 - 2**20) as f:
    np.lib.format.write_array_header_1_0(
        f, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
            "shape": tuple(shape)})
    written = 0
    for chunk in chunks:
      chunk = np.ascontiguousarray(chunk, dtype)
      f.write(chunk.data)
      written += chunk.nbytes
    if written != size:
      raise AssertionError(f"{name}: wrote {written} bytes of {size}")


def write(workdir, out: Path, num: int, seed: int = 0, batch: int = 500,
          checkpoint: str | int = "latest", labels: list | None = None,
          member: int | None = None, truncation: float | None = None) -> tuple[int, ...]:
  """Writes the images of `generate(...)` (and their labels) to the .npz
  `out` a batch at a time; returns the image shape. Until it is complete
  the file is `.<name>.tmp` beside `out`, removed on failure, so an existing
  `out` is replaced only by a whole file."""
  config, info = rundir.read(workdir)
  check_disk(out, num, info["image_shape"], bool(config.get("conditional", False)))
  sampler, state, key, labels, shape = _prepare(workdir, num, seed, batch, checkpoint, labels,
                                                member, truncation)
  tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
  try:
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as z:
      _write_array(z, "images", (num, *shape), np.uint8,
                   sampler.chunks(state, num, key, labels))
      if labels is not None:
        step = 1 << 20
        _write_array(z, "labels", (num,), np.int32,
                     (labels[i:i + step] for i in range(0, num, step)))
    os.replace(tmp, out)
  finally:
    tmp.unlink(missing_ok=True)
  return shape


def define_flags():
  """The command-line flags; defined only when run as a program, so that
  importing this module leaves the importer's flags alone."""
  flags.DEFINE_string("workdir", None, "A run directory written by an experiment.", required=True)
  flags.DEFINE_integer("num", 1000, "How many images.")
  flags.DEFINE_string("out", "samples.npz", "Output .npz file.")
  flags.DEFINE_integer("seed", 0, "Seed of the latent draws.")
  flags.DEFINE_integer("batch", 500, "Images generated per compiled call.")
  flags.DEFINE_string("checkpoint", "latest", "'latest', 'best' (lowest FID) or a step number.")
  flags.DEFINE_integer("member", None, "Population runs (config.population): the member "
                       "to sample from.")
  flags.DEFINE_list("labels", [], "Conditional runs: classes to draw, by number or by "
                    "folder name, repeated to --num (default: every class in turn).")
  flags.DEFINE_float("truncation", None, "The truncation trick: z drawn from the normal "
                     "truncated to [-T, T], T in (0, 2], for families that take it (biggan).")


def main(argv):
  del argv
  runtime.configure()
  logging.set_verbosity(logging.WARNING)
  FLAGS = flags.FLAGS
  for name in ("num", "batch"):
    if FLAGS[name].value < 1:
      raise app.UsageError(f"--{name}={FLAGS[name].value} must be at least 1.")
  if not 0 <= FLAGS.seed < 2**63:
    raise app.UsageError(f"--seed={FLAGS.seed} must be in [0, 2**63).")
  try:
    out = check_output_path(FLAGS.out)
    check_truncation(FLAGS.truncation)
    shape = write(FLAGS.workdir, out, FLAGS.num, FLAGS.seed, FLAGS.batch,
                  rundir.parse_checkpoint(FLAGS.checkpoint), FLAGS.labels, FLAGS.member,
                  FLAGS.truncation)
  except (FileNotFoundError, ValueError, checkpoint.CheckpointError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)
  except OSError as e:  # the disk filled up, or --out's folder changed meanwhile
    print(f"error: writing {out} failed ({e}); nothing was written there. Free space or "
          "name another --out.", file=sys.stderr)
    sys.exit(1)
  print(f"Wrote {FLAGS.num} images {shape} uint8 to {out}.")


def check_output_path(out: str) -> Path:
  """`--out` as a writable .npz path, checked before any image is generated."""
  path = Path(out)
  if path.suffix != ".npz":
    raise ValueError(f"--out={out}: name a .npz file (e.g. {path.with_suffix('.npz').name}).")
  if path.is_dir():
    raise ValueError(f"--out={out} is a folder; name a .npz file in it.")
  if not path.parent.is_dir():
    raise ValueError(f"--out={out}: the folder {path.parent} does not exist; create it first.")
  if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
    raise ValueError(f"--out={out}: {path if path.exists() else path.parent} is not writable.")
  return path


if __name__ == "__main__":
  define_flags()
  app.run(main)
