"""Writes a folder of real RGB photographs, one subfolder per class, from a Debian package.

  python scripts/make_rgb_folder.py DIR [--size 128] [--limit N]
  python -m experiments.gan_folder --config.data.path=DIR --config.data.labels=folders

The photographs are the 273 landscape, city, sea, space-facility ... photos
that Endless Sky shows on its landing screens (Debian package
`endless-sky-data`, images/land/*.jpg, 720x360 RGB JPEGs). Their licences are
public domain (donated to morgueFile or Unsplash; NASA, USGS) and, for the
credited photographers, CC-BY-SA-3.0 or CC-BY-SA-4.0: the package's copyright
file, which names who took what, is copied into DIR as COPYRIGHT.txt.

A photo's class is the scene its file name starts with (mountain, city, sea,
...): 19 classes of 5 to 26 photos, and `other` for the 45 photos named after
their photographer or archive instead. Each photo is centre-cropped to a square
and resized to `--size` (Lanczos; never enlarged beyond its 360 px height) and
written as DIR/<class>/<name>.png. The output depends only on the package's
files and the arguments: two runs write identical files.

Where the package is not installed, `apt-get download endless-sky-data` fetches
its .deb (70 MB; no root needed) into --cache, default
$GENJAX_CACHE/debs or ~/.cache/genjax/debs, and `dpkg -x` unpacks it there.
"""

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

PACKAGE = "endless-sky-data"
LICENCE = ("public domain (morgueFile, Unsplash, NASA, USGS) and CC-BY-SA-3.0/4.0 for the "
           "credited photographers; see COPYRIGHT.txt")
LAND = "usr/share/games/endless-sky/images/land"
COPYRIGHT = f"usr/share/doc/{PACKAGE}/copyright"
# The scenes that name the photos; other prefixes name a photographer or archive.
SCENES = ("badlands", "beach", "canyon", "city", "desert", "dune", "fields", "fog",
          "forest", "hills", "lava", "mountain", "sea", "sky", "snow", "space", "station",
          "valley", "water")


class Missing(Exception):
  """The photos cannot be had: the message is the one line to print."""


def default_cache() -> Path:
  base = os.environ.get("GENJAX_CACHE")
  return (Path(base) if base else Path.home() / ".cache" / "genjax") / "debs"


def find_package(cache: Path) -> Path:
  """The root under which LAND lies: / where the package is installed, else
  its .deb unpacked in `cache` (downloaded there first if needed)."""
  if (Path("/") / LAND).is_dir():
    return Path("/")
  unpacked = cache / PACKAGE
  if (unpacked / LAND).is_dir():
    return unpacked
  install = f"apt-get install {PACKAGE}"
  if not shutil.which("apt-get") or not shutil.which("dpkg"):
    raise Missing(f"{PACKAGE} is not installed and apt-get/dpkg are not here to fetch it: "
                  f"on Debian or Ubuntu run `{install}`.")
  cache.mkdir(parents=True, exist_ok=True)
  for old in cache.glob(f"{PACKAGE}_*.deb"):
    old.unlink()
  fetch = subprocess.run(["apt-get", "download", PACKAGE], cwd=cache, capture_output=True,
                         text=True)
  debs = sorted(cache.glob(f"{PACKAGE}_*.deb"))
  if fetch.returncode or not debs:
    reason = (fetch.stderr.strip().splitlines() or ["no .deb written"])[-1]
    raise Missing(f"{PACKAGE} is not installed and `apt-get download {PACKAGE}` failed "
                  f"({reason}): run `apt-get update && {install}`.")
  staging = cache / f"{PACKAGE}.partial"
  shutil.rmtree(staging, ignore_errors=True)
  subprocess.run(["dpkg", "-x", str(debs[-1]), str(staging)], check=True)
  if not (staging / LAND).is_dir():
    raise Missing(f"{debs[-1]} holds no {LAND}: run `{install}`.")
  keep = cache / f"{PACKAGE}.keep"  # the photos and the copyright file only (20 of 79 MB)
  shutil.rmtree(keep, ignore_errors=True)
  shutil.copytree(staging / LAND, keep / LAND)
  (keep / COPYRIGHT).parent.mkdir(parents=True)
  shutil.copyfile(staging / COPYRIGHT, keep / COPYRIGHT)
  shutil.rmtree(unpacked, ignore_errors=True)
  keep.rename(unpacked)
  shutil.rmtree(staging)
  debs[-1].unlink()
  return unpacked


def class_of(name: str) -> str:
  prefix = re.match(r"[a-z]*", name.lower()).group(0)
  return prefix if prefix in SCENES else "other"


def square(image, size: int):
  """`image` centre-cropped to a square, resized to `size` (never enlarged)."""
  from PIL import Image

  width, height = image.size
  side = min(width, height)
  left, top = (width - side) // 2, (height - side) // 2
  image = image.crop((left, top, left + side, top + side))
  size = min(size, side)
  return image if size == side else image.resize((size, size), Image.LANCZOS)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("dir", help="the folder to write (new or empty)")
  parser.add_argument("--size", type=int, default=128,
                      help="side of the square images, at most 360 (default 128)")
  parser.add_argument("--limit", type=int, default=0,
                      help="at most this many images per class, the first by name (default: all)")
  parser.add_argument("--cache", type=Path, default=None,
                      help="where a downloaded .deb is unpacked (default $GENJAX_CACHE/debs "
                           "or ~/.cache/genjax/debs)")
  args = parser.parse_args(argv)
  if args.size < 1 or args.limit < 0:
    parser.error("--size must be >= 1 and --limit >= 0")
  out = Path(args.dir).expanduser()
  if out.exists() and (not out.is_dir() or any(out.iterdir())):
    print(f"error: {out} exists and is not an empty folder; name a new one.", file=sys.stderr)
    return 1
  try:
    root = find_package(args.cache or default_cache())
  except Missing as error:
    print(f"error: {error}", file=sys.stderr)
    return 1

  from PIL import Image

  files = sorted(glob.glob(str(root / LAND / "*.jpg")))
  taken = Counter()
  out.mkdir(parents=True, exist_ok=True)
  for path in files:
    name = Path(path).stem
    label = class_of(name)
    if args.limit and taken[label] >= args.limit:
      continue
    with Image.open(path) as image:
      image = square(image.convert("RGB"), args.size)
    (out / label).mkdir(exist_ok=True)
    image.save(out / label / f"{name}.png", optimize=False, compress_level=6)
    taken[label] += 1
  shutil.copyfile(root / COPYRIGHT, out / "COPYRIGHT.txt")

  side = min(args.size, 360)
  for label in sorted(taken):
    print(f"{label:10s} {taken[label]:4d}")
  print(f"{sum(taken.values())} RGB images of {side}x{side} in {len(taken)} classes written "
        f"to {out}, from the Debian package {PACKAGE} ({root / LAND}); licence: {LICENCE}.")
  return 0


if __name__ == "__main__":
  sys.exit(main())
