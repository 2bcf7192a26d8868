"""How far a GAN's discriminator has learned its training images by heart:
`python scripts/d_overfitting.py RUN [--checkpoint=latest] [--num=1000]`.

Karras et al. (2020, figure 1) watch D's outputs on the training reals
against held-out reals: while D generalises the two agree; once it has
memorised its few images the held-out reals score like fakes. ADA's r_t is
the training half of that, E[sign(D(x_train))]. For each member of a `gan`
or `biggan` run this prints, as JSON, D's mean output and mean sign on up to
`--num` training images and as many test images (with their labels for a
conditional D), and their gap.
"""

import argparse
import json
import sys

from genjax import runtime

runtime.configure()

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from genjax import images as images_lib  # noqa: E402
from genjax.train import members as members_lib  # noqa: E402
from genjax.train import population  # noqa: E402
from genjax.train import workdir as rundir  # noqa: E402

FAMILIES = ("gan", "biggan")


def d_outputs(state, split, num: int, chunk: int = 256) -> np.ndarray:
  """D's outputs [n] on the first `num` images of `split`, labels included."""
  n = min(num, len(split.images))
  d = state.discriminator
  out = []
  for lo in range(0, n, chunk):
    x = jnp.asarray(images_lib.to_float(split.images[lo:min(lo + chunk, n)]))
    labels = (jnp.asarray(split.labels[lo:lo + len(x)]) if split.labels is not None
              else jnp.zeros((len(x),), jnp.int32))
    out.append(np.asarray(d.apply_fn(d.variables(), x, labels), np.float32).reshape(-1))
  return np.concatenate(out)


def measure(workdir, checkpoint="latest", num: int = 1000) -> dict:
  """{'step', 'members': [{member, train: {images, mean, sign_mean}, test: ..., gap}]}
  (member None for a single model)."""
  config, _ = rundir.read(workdir)
  if config.family not in FAMILIES:
    raise ValueError(f"{workdir} is a {config.family!r} run; D's outputs are measured for "
                     f"the {' and '.join(FAMILIES)} families.")
  config, family, state = rundir.restore(workdir, checkpoint)
  if members_lib.active(config):
    members = [(i, population.member_state(state, i))
               for i in range(len(members_lib.members_of(config).configs))]
  else:
    members = [(None, state)]
  splits = {name: family.load_split(config, name) for name in ("train", "test")}
  result = {"workdir": str(workdir), "checkpoint": str(checkpoint), "step": int(state.step),
            "members": []}
  for member, member_state in members:
    entry = {"member": member}
    for name, split in splits.items():
      o = d_outputs(member_state, split, num)
      entry[name] = {"images": len(o), "mean": float(o.mean()),
                     "sign_mean": float(np.sign(o).mean())}
    entry["gap"] = entry["train"]["mean"] - entry["test"]["mean"]
    result["members"].append(entry)
  return result


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("workdir")
  parser.add_argument("--checkpoint", default="latest", help="'latest', 'best' or a step")
  parser.add_argument("--num", type=int, default=1000, help="images of each split")
  args = parser.parse_args()
  try:
    result = measure(args.workdir, rundir.parse_checkpoint(args.checkpoint), args.num)
  except (ValueError, FileNotFoundError) as e:
    sys.exit(f"error: {e}")
  print(json.dumps(result, indent=2))


if __name__ == "__main__":
  main()
