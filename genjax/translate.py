"""Applies a trained translator to a folder of images; writes PNGs.

  python -m genjax.translate --workdir runs/pix2pix_edges2fashion --input edges/ --out garments/
  python -m genjax.translate --workdir runs/cyclegan_edges2fashion --input edges/ --out g/ --direction ba

Every JPEG/PNG/WebP under --input (recursively) is resized and cropped as
the run's training images were (the run's Family says how, and this
command prints it), translated at the size the networks were trained at, and
written under --out with the same relative name and the suffix .png.
pix2pix translates its one direction ('ab', input to target); CycleGAN
either ('ab': A -> B, 'ba': B -> A). A super-resolution run takes each
image as the low-resolution one; an inpainting run takes a mask of each
image from --masks, under the same relative name (any image suffix), the
same size as its image, white (> 127) on the hole; its outputs keep the
known pixels.

Images with another channel count than the run's (RGB into a greyscale
run, or the reverse) are refused, naming the first few, unless --convert
converts them (and says how many). pix2pix's batch norm uses the
statistics of each batch (as the paper tests), so --batch (default: the
run's batch size) is part of the result; its dropout noise comes from --seed.

Every input is opened and checked before any output is written; each PNG
is written to a temporary name and renamed, so a file under --out is
either whole or absent. An --out that would overwrite an input is refused.
"""

import os
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags, logging
from PIL import Image

from genjax import checkpoint, models, runtime
from genjax import images as images_lib
from genjax.data import folder, paired
from genjax.train import workdir as rundir

GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def _first(paths) -> str:
  names = [str(p) for p in paths]
  return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def list_inputs(input_dir: Path) -> list[Path]:
  """The image files under `input_dir`, sorted; ValueError when there are none."""
  if not input_dir.is_dir():
    raise ValueError(f"--input={input_dir} is not a folder; name a folder of images.")
  files = sorted(p for p in input_dir.rglob("*")
                 if p.is_file() and p.suffix.lower() in folder.IMAGE_SUFFIXES)
  if not files:
    raise ValueError(f"--input={input_dir} holds no {'/'.join(folder.IMAGE_SUFFIXES)} image "
                     "(searched recursively).")
  return files


def output_paths(files: list[Path], input_dir: Path, out_dir: Path) -> list[Path]:
  """out_dir / (relative name with .png) of each input; ValueError when one
  would overwrite an input or two inputs would write the same file."""
  outs = [out_dir / p.relative_to(input_dir).with_suffix(".png") for p in files]
  inputs = {p.resolve() for p in files}
  clash = [o for o in outs if o.resolve() in inputs]
  if clash:
    raise ValueError(f"--out={out_dir} would overwrite the input {clash[0]}; name another "
                     "--out folder.")
  seen = {}
  for f, o in zip(files, outs):
    if o in seen:
      raise ValueError(f"{seen[o]} and {f} would both be written as {o}; rename one.")
    seen[o] = f
  return outs


def channels_of(path: Path) -> int:
  """1 for a greyscale file, 3 for a colour one (read from its header)."""
  try:
    with Image.open(path) as image:
      return 1 if image.mode in GREY_MODES else 3
  except (OSError, ValueError) as e:
    raise ValueError(f"{path} is not a readable image ({e}); remove it from --input.") from None


def check_channels(files: list[Path], channels: int, convert: bool) -> list[Path]:
  """The inputs whose channel count is not the run's: ValueError naming
  them unless `convert`, else returned (to be converted)."""
  other = [p for p in files if channels_of(p) != channels]
  if other and not convert:
    kind = {1: "greyscale", 3: "RGB"}
    raise ValueError(f"{len(other)} input images are not {kind[channels]} as the run's are: "
                     f"{_first(other)}; pass --convert to convert them to {kind[channels]}.")
  return other


def mask_paths(files: list[Path], input_dir: Path, masks_dir: Path) -> list[Path]:
  """The mask of each input: masks_dir / the same relative name, any image
  suffix; ValueError naming the first input without one."""
  if not masks_dir.is_dir():
    raise ValueError(f"--masks={masks_dir} is not a folder; an inpainting run needs a folder "
                     "of masks under the inputs' relative names (white: the hole).")
  found = []
  for f in files:
    stem = masks_dir / f.relative_to(input_dir).with_suffix("")
    hits = [stem.with_suffix(s) for s in (f.suffix, *folder.IMAGE_SUFFIXES)
            if stem.with_suffix(s).is_file()]
    if not hits:
      raise ValueError(f"{f} has no mask {stem}.png (or another image suffix) under "
                       f"--masks={masks_dir}; give every input a mask of the same name.")
    found.append(hits[0])
  return found


def read_mask(path: Path, image_path: Path, size: int) -> np.ndarray:
  """uint8 [size, size, 1]: 255 on the hole (pixels > 127), 0 elsewhere,
  resized (nearest); ValueError when its size is not its image's."""
  with Image.open(path) as opened:
    mask = opened.convert("L")
  with Image.open(image_path) as image:
    want = image.size
  if mask.size != want:
    raise ValueError(f"{path} is {mask.size[0]}x{mask.size[1]}, but its image {image_path} is "
                     f"{want[0]}x{want[1]}; give it a mask of the same size.")
  mask = mask.resize((size, size), Image.Resampling.NEAREST)
  return np.where(np.asarray(mask) > 127, 255, 0).astype(np.uint8)[..., None]


def _write_png(path: Path, image: np.ndarray) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
  try:
    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(tmp, format="PNG")
    os.replace(tmp, path)
  finally:
    tmp.unlink(missing_ok=True)


def translate_folder(workdir, input_dir, out_dir, direction: str = "ab", seed: int = 0,
                     batch: int = 0, convert: bool = False, checkpoint_name="latest",
                     log=None, masks_dir=None) -> list[Path]:
  """Translates every image under `input_dir` into `out_dir` (module
  docstring); returns the paths written."""
  log = log or (lambda m: print(m, file=sys.stderr))
  input_dir, out_dir = Path(input_dir).expanduser(), Path(out_dir).expanduser()
  config, info = rundir.read(workdir)
  family = models.get(config.family)
  if family.translator is None:
    raise ValueError(f"{workdir} holds a {config.family!r} run, which does not translate "
                     "images; `python -m genjax.sample` draws from it.")
  shape = tuple(info["image_shape"])
  translator = family.translator(config, shape)
  if direction not in translator.directions:
    raise ValueError(f"--direction={direction}: this {config.family} run translates "
                     f"{' and '.join(translator.directions)}.")
  files = list_inputs(input_dir)
  outs = output_paths(files, input_dir, out_dir)
  masks = None
  if translator.needs_masks:
    if not masks_dir:
      raise ValueError(f"{workdir} holds an inpainting run: give --masks, a folder of masks "
                       "under the inputs' relative names (white: the hole).")
    masks = mask_paths(files, input_dir, Path(masks_dir).expanduser())
    for m, f in zip(masks, files):
      read_mask(m, f, translator.size)
  channels = shape[-1]
  converted = set(check_channels(files, channels, convert))
  batch = batch or config.batch_size
  config, family, state = rundir.restore(workdir, checkpoint_name)
  log(f"Translating {len(files)} images ({direction}): {translator.how}; outputs "
      f"{translator.size}x{translator.size}.")
  if converted:
    log(f"Converted {len(converted)} images to {'greyscale' if channels == 1 else 'RGB'} "
        f"(--convert): {_first(sorted(converted))}.")
  apply = jax.jit(translator.apply, static_argnums=2)
  key = jax.random.key(seed)
  for start in range(0, len(files), batch):
    chunk = files[start:start + batch]
    x = np.stack([translator.prepare(paired.read_image(p, channels)) for p in chunk])
    if masks is not None:
      x = np.concatenate([x, np.stack([read_mask(m, f, translator.size) for m, f in
                                       zip(masks[start:start + batch], chunk)])], axis=-1)
    y = apply(state, jnp.asarray(images_lib.to_float(x)), direction,
              jax.random.fold_in(key, start))
    for out, image in zip(outs[start:start + batch], images_lib.to_uint8(y)):
      _write_png(out, image)
  return outs


def define_flags():
  flags.DEFINE_string("workdir", None, "A translator's run directory (pix2pix, CycleGAN).",
                      required=True)
  flags.DEFINE_string("input", None, "A folder of images (searched recursively).", required=True)
  flags.DEFINE_string("out", None, "The folder the PNGs go to (same relative names).",
                      required=True)
  flags.DEFINE_enum("direction", "ab", ["ab", "ba"], "ab: A -> B (pix2pix: input -> target); "
                    "ba: B -> A (CycleGAN only).")
  flags.DEFINE_integer("seed", 0, "Seed of pix2pix's dropout noise.")
  flags.DEFINE_integer("batch", 0, "Images per compiled call; 0 = the run's batch size.")
  flags.DEFINE_bool("convert", False, "Convert images of another channel count than the run's.")
  flags.DEFINE_string("checkpoint", "latest", "'latest' or a step number.")
  flags.DEFINE_string("masks", None, "Inpainting runs: a folder of masks under the inputs' "
                      "relative names (white: the hole).")


def main(argv):
  del argv
  runtime.configure()
  logging.set_verbosity(logging.WARNING)
  FLAGS = flags.FLAGS
  if FLAGS.batch < 0:
    raise app.UsageError(f"--batch={FLAGS.batch} must be >= 0.")
  try:
    outs = translate_folder(FLAGS.workdir, FLAGS.input, FLAGS.out, FLAGS.direction, FLAGS.seed,
                            FLAGS.batch, FLAGS.convert, rundir.parse_checkpoint(FLAGS.checkpoint),
                            masks_dir=FLAGS.masks)
  except (FileNotFoundError, ValueError, checkpoint.CheckpointError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)
  print(f"Wrote {len(outs)} images to {FLAGS.out}.")


if __name__ == "__main__":
  define_flags()
  app.run(main)
