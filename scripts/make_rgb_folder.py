"""Writes a folder of real RGB images, one subfolder per class, from a Debian or npm package.

  python scripts/make_rgb_folder.py DIR [--source endless-sky] [--size 128] [--limit N]
  python scripts/make_rgb_folder.py DIR --source emoji [--limit N] [--skin-tones] [--component]
  python -m experiments.gan_folder --config.data.path=DIR --config.data.labels=folders

`--source endless-sky` (the default): the 273 landscape, city, sea,
space-facility ... photos that Endless Sky shows on its landing screens (Debian package
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

`--source emoji`: artwork, not photographs. Google's Noto Color Emoji at
64x64, as the npm package `emoji-datasource-google@16.0.0` ships them
(img/google/64/*.png): PNGs of a drawing on a transparent background (RGBA;
62 greyscale with alpha, 2 with a palette),
copied byte for byte (genjax.data.folder composites them on
`data.background`). An image's class is its category in the package's
emoji.json, as a folder name (smileys-emotion, people-body, ...), and its
file is <short_name>.png. By default the 1,875 skin-tone variants
(near-duplicates of their base emoji) and the 5 swatches of the `component`
category are left out, which gives 1,906 images in 9 classes:

  activities 85, animals-nature 159, flags 270, food-drink 131, objects 264,
  people-body 386, smileys-emotion 169, symbols 224, travel-places 218

`--skin-tones` adds the variants as <short_name>_<tone>.png (all of them
people-body, which then holds 2,261: 3,781 images in all) and `--component`
the 5 swatches. Licences: the package is MIT (its LICENSE,
Copyright (c) 2013 Cal Henderson) and its README says that the
Android/Google/Noto images are under the Apache License 2.0; both, with the
package's README section, are written into DIR as LICENSE.txt.

The tarball (74 MB) is fetched with `npm pack` into --cache (default
$GENJAX_CACHE/npm or ~/.cache/genjax/npm), or read from `--tarball PATH`
offline, and used only when its SHA-512 is the one the npm registry records
for the release (pinned below as INTEGRITY).
"""

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from collections import Counter
from pathlib import Path

PACKAGE = "endless-sky-data"
LICENCE = ("public domain (morgueFile, Unsplash, NASA, USGS) and CC-BY-SA-3.0/4.0 for the "
           "credited photographers; see COPYRIGHT.txt")
LAND = "usr/share/games/endless-sky/images/land"
COPYRIGHT = f"usr/share/doc/{PACKAGE}/copyright"
EMOJI = "emoji-datasource-google@16.0.0"
# The registry's record of that release (`npm view emoji-datasource-google@16.0.0 dist.integrity`).
INTEGRITY = ("sha512-ZRexfzs7MVoLnmzZmNsO4TKhnAJp5D++Vm6PpUpH/jEQQlemp3l88CjZ+DoZ2faM9R4QxZkOPJ"
             "CoT8DlPhfQ3A==")
EMOJI_IMAGES = "package/img/google/64"
EMOJI_LICENCE = ("MIT (the package, Copyright (c) 2013 Cal Henderson) and Apache-2.0 (the Noto "
                 "Emoji images); see LICENSE.txt")
# The scenes that name the photos; other prefixes name a photographer or archive.
SCENES = ("badlands", "beach", "canyon", "city", "desert", "dune", "fields", "fog",
          "forest", "hills", "lava", "mountain", "sea", "sky", "snow", "space", "station",
          "valley", "water")


class Missing(Exception):
  """The photos cannot be had: the message is the one line to print."""


def default_cache(kind: str = "debs") -> Path:
  base = os.environ.get("GENJAX_CACHE")
  return (Path(base) if base else Path.home() / ".cache" / "genjax") / kind


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


def slug(category: str) -> str:
  """'Smileys & Emotion' -> 'smileys-emotion'."""
  return re.sub(r"[^a-z0-9]+", "-", category.lower()).strip("-")


def emoji_tarball(path: Path | None, cache: Path) -> Path:
  """The verified tarball of EMOJI: `path`, else the one in `cache`, fetched
  there first if needed. Raises Missing with the one line to print."""
  sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # genjax, from a checkout
  from genjax.data.sources import npm  # pylint: disable=import-outside-toplevel

  try:
    if path is not None:
      if not path.is_file():
        raise Missing(f"--tarball {path} is not a file; give the .tgz of `npm pack {EMOJI}`.")
      npm.verify_tarball(path, EMOJI, INTEGRITY)
      return path
    return npm.pack_tarball(EMOJI, INTEGRITY, cache / f"{EMOJI.replace('@', '-')}.tgz",
                            log=lambda m: print(m, file=sys.stderr))
  except npm.FetchError as error:
    raise Missing(str(error).splitlines()[0]) from None


def emoji_images(tarball: Path, skin_tones: bool, component: bool, limit: int):
  """{class: {file name: PNG bytes}} of the tarball's 64 px images, and the
  text of LICENSE.txt; one pass over the tarball."""
  wanted, blobs = {}, {}
  with tarfile.open(tarball, "r:gz") as tar:
    for member in tar:
      if member.isfile() and (member.name.startswith(EMOJI_IMAGES + "/") or member.name in (
          "package/emoji.json", "package/LICENSE", "package/README.md")):
        blobs[member.name] = tar.extractfile(member).read()
  for entry in json.loads(blobs["package/emoji.json"]):
    label = slug(entry["category"])
    if label == "component" and not component:
      continue
    variants = [(entry["short_name"], entry["image"])]
    if skin_tones:
      variants += [(f"{entry['short_name']}_{tone.lower()}", v["image"])
                   for tone, v in sorted(entry.get("skin_variations", {}).items())]
    for name, image in variants:
      wanted.setdefault(label, {})[f"{name}.png"] = blobs[f"{EMOJI_IMAGES}/{image}"]
  if limit:
    wanted = {label: dict(sorted(files.items())[:limit]) for label, files in wanted.items()}
  readme = blobs["package/README.md"].decode()
  terms = next(line for line in readme.splitlines() if line.startswith("* Android/Google"))
  notice = (f"Images: Noto Color Emoji (https://github.com/googlefonts/noto-emoji), 64x64 PNGs "
            f"from the npm package {EMOJI}.\n\nThe package's README says of them:\n\n"
            f"{terms}\n\nThe package's LICENSE:\n\n{blobs['package/LICENSE'].decode()}")
  return wanted, notice


def write_emoji(out: Path, args) -> int:
  try:
    tarball = emoji_tarball(args.tarball, args.cache or default_cache("npm"))
  except Missing as error:
    print(f"error: {error}", file=sys.stderr)
    return 1
  classes, notice = emoji_images(tarball, args.skin_tones, args.component, args.limit)
  out.mkdir(parents=True, exist_ok=True)
  for label, files in sorted(classes.items()):
    (out / label).mkdir()
    for name, png in files.items():
      (out / label / name).write_bytes(png)
  (out / "LICENSE.txt").write_text(notice)
  for label, files in sorted(classes.items()):
    print(f"{label:16s} {len(files):4d}")
  print(f"{sum(map(len, classes.values()))} PNG images of 64x64 (emoji on a transparent "
        f"background) in {len(classes)} classes written to {out}, from the npm package "
        f"{EMOJI} ({tarball}); licence: {EMOJI_LICENCE}.")
  return 0


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("dir", help="the folder to write (new or empty)")
  parser.add_argument("--source", choices=("endless-sky", "emoji"), default="endless-sky",
                      help="endless-sky: 273 photos in 20 classes (Debian); emoji: 1,906 Noto "
                           "emoji in 9 classes (npm) (default endless-sky)")
  parser.add_argument("--size", type=int, default=None,
                      help="endless-sky: side of the square images, at most 360 (default 128); "
                           "emoji: 64 only")
  parser.add_argument("--limit", type=int, default=0,
                      help="at most this many images per class, the first by name (default: all)")
  parser.add_argument("--cache", type=Path, default=None,
                      help="where a downloaded package is kept (default $GENJAX_CACHE/debs or "
                           "~/.cache/genjax/debs; for emoji .../npm)")
  parser.add_argument("--tarball", type=Path, default=None,
                      help="emoji: the .tgz of `npm pack %s`, already downloaded" % EMOJI)
  parser.add_argument("--skin-tones", action="store_true",
                      help="emoji: add the 1,875 skin-tone variants (default: left out)")
  parser.add_argument("--component", action="store_true",
                      help="emoji: add the 5 skin-tone swatches of the Component category")
  args = parser.parse_args(argv)
  if args.source == "emoji":
    if args.size not in (None, 64):
      parser.error(f"--size {args.size}: the emoji images are 64x64; leave --size out "
                   "(data.image_size resizes them when read)")
  elif args.tarball or args.skin_tones or args.component:
    parser.error("--tarball, --skin-tones and --component are for --source emoji")
  args.size = args.size or 128
  if args.size < 1 or args.limit < 0:
    parser.error("--size must be >= 1 and --limit >= 0")
  out = Path(args.dir).expanduser()
  if out.exists() and (not out.is_dir() or any(out.iterdir())):
    print(f"error: {out} exists and is not an empty folder; name a new one.", file=sys.stderr)
    return 1
  if args.source == "emoji":
    return write_emoji(out, args)
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
