"""scripts/make_rgb_folder.py, run as a user runs it: a small slice of the real
RGB photos of Debian's endless-sky-data, and the Noto emoji of the npm package
emoji-datasource-google, written as class folders that genjax's folder
loader reads."""

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from experiments import gan_folder
from genjax import data

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "make_rgb_folder.py"
INSTALLED = Path("/usr/share/games/endless-sky/images/land")
# The script's own cache, so that a machine without the package downloads it once.
CACHE = Path.home() / ".cache" / "genjax" / "debs"


def make(out: Path, *args: str, cache: Path = CACHE) -> str:
  result = subprocess.run([sys.executable, str(SCRIPT), str(out), "--cache", str(cache), *args],
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr
  return result.stdout


def digests(folder: Path) -> dict[str, str]:
  return {str(f.relative_to(folder)): hashlib.sha256(f.read_bytes()).hexdigest()
          for f in sorted(folder.rglob("*")) if f.is_file()}


def test_a_slice_of_the_photos_is_an_rgb_class_folder_the_loader_reads(tmp_path, monkeypatch):
  if not INSTALLED.is_dir() and not (CACHE / "endless-sky-data").is_dir() and not (
      shutil.which("apt-get") and shutil.which("dpkg")):
    pytest.skip("needs the Debian package endless-sky-data (.ci/run installs it)")
  first, second = tmp_path / "a", tmp_path / "b"
  said = make(first, "--limit", "3", "--size", "64")
  assert "endless-sky-data" in said and "CC-BY-SA" in said
  make(second, "--limit", "3", "--size", "64")
  assert digests(first) == digests(second)  # deterministic, byte for byte

  classes = sorted(d.name for d in first.iterdir() if d.is_dir())
  assert len(classes) == 20 and {"mountain", "city", "sea", "other"} <= set(classes)
  images = sorted(first.glob("*/*.png"))
  assert len(images) == 3 * len(classes)  # every class has at least 3 photos
  assert f"{len(images)} RGB images of 64x64 in 20 classes" in said
  assert (first / "COPYRIGHT.txt").read_text().count("CC-BY-SA") > 0
  for path in images:
    with Image.open(path) as image:
      assert image.mode == "RGB" and image.size == (64, 64)
      pixels = np.asarray(image)
    assert pixels.std() > 5 and np.abs(pixels[..., 0].astype(int) - pixels[..., 2]).mean() > 1

  monkeypatch.setenv("GENJAX_CACHE", str(tmp_path / "cache"))  # the loader's scan cache
  config = gan_folder.get_config()
  config.data.path, config.data.image_size, config.data.labels = str(first), 64, "folders"
  config.data.pipeline = "device"
  splits = {split: data.load_from_config(config.data, split) for split in ("train", "test")}
  assert sum(len(s) for s in splits.values()) == len(images)
  train = splits["train"]
  assert train.num_classes == 20 and train.images.shape[1:] == (64, 64, 3)
  assert train.images.dtype == np.uint8
  assert set(np.unique(train.labels)) <= set(range(20)) and len(np.unique(train.labels)) > 15


EMOJI_CACHE = Path.home() / ".cache" / "genjax" / "npm"  # the script's default cache
EMOJI_CLASSES = {"activities": 85, "animals-nature": 159, "flags": 270, "food-drink": 131,
                 "objects": 264, "people-body": 386, "smileys-emotion": 169, "symbols": 224,
                 "travel-places": 218}  # the counts the script's docstring gives


def test_the_emoji_source_writes_its_nine_categories_as_rgba_class_folders(tmp_path):
  """The real npm package (from the cache, else `npm pack`): every category
  but Component, skin-tone variants left out, --limit per class."""
  full, sliced = tmp_path / "full", tmp_path / "sliced"
  said = make(full, "--source", "emoji", cache=EMOJI_CACHE)
  assert "1906 PNG images of 64x64 (emoji on a transparent background) in 9 classes" in said
  assert {d.name: len(list(d.glob("*.png"))) for d in full.iterdir() if d.is_dir()} \
      == EMOJI_CLASSES
  assert not list(full.glob("people-body/*_1f3f*.png"))  # no skin-tone variants
  notice = (full / "LICENSE.txt").read_text()
  assert "Apache License 2.0" in notice and "The MIT License" in notice

  make(sliced, "--source", "emoji", "--limit", "4", "--skin-tones", "--component",
       cache=EMOJI_CACHE)
  counts = {d.name: len(list(d.glob("*.png"))) for d in sliced.iterdir() if d.is_dir()}
  assert counts == {**{label: 4 for label in EMOJI_CLASSES}, "component": 4}
  assert list(sliced.glob("people-body/*_1f3f*.png"))  # the variants, when asked for
  for path in sliced.glob("*/*.png"):
    twin = full / path.relative_to(sliced)
    assert not twin.exists() or path.read_bytes() == twin.read_bytes()  # copied byte for byte
    with Image.open(path) as image:
      assert image.size == (64, 64) and image.mode in ("RGBA", "LA", "P")
      alpha = np.asarray(image.convert("RGBA"))[..., 3]
    assert alpha.min() == 0 and alpha.max() == 255  # a drawing on a transparent background


def test_a_corrupted_emoji_tarball_is_refused_in_one_line(tmp_path):
  make(tmp_path / "warm", "--source", "emoji", "--limit", "1", cache=EMOJI_CACHE)
  tarball = EMOJI_CACHE / "emoji-datasource-google-16.0.0.tgz"
  broken = tmp_path / "broken.tgz"
  data = bytearray(tarball.read_bytes())
  data[len(data) // 2] ^= 0xFF  # one flipped byte
  broken.write_bytes(bytes(data))
  result = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "out"), "--source",
                           "emoji", "--tarball", str(broken)], capture_output=True, text=True,
                          timeout=300)
  assert result.returncode == 1 and not (tmp_path / "out").exists()
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and str(broken) in lines[0] and "integrity" in lines[0], result.stderr
