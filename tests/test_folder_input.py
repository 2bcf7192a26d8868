"""What a folder of images may hold: 16-bit PNGs, rotated phone photos, very
large images, names that are not UTF-8, and a damaged scan cache."""

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import ml_collections
import numpy as np
import pytest
from PIL import Image

from genjax import data
from genjax.data import folder as folder_lib

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
  monkeypatch.setenv("GENJAX_CACHE", str(tmp_path / "cache"))
  monkeypatch.delenv("GENJAX_MAX_MEGAPIXELS", raising=False)


def _write_images(folder: Path, n: int, size=(36, 36)) -> list[np.ndarray]:
  folder.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(0)
  images = []
  for i in range(n):
    images.append(rng.integers(0, 256, (*size, 3), np.uint8))
    Image.fromarray(images[-1]).save(folder / f"{i:02d}.png")
  return images


def _png16(path: Path, pixels: np.ndarray, color_type: int) -> None:
  """A 16-bit PNG written by hand (PIL writes 16-bit greyscale only)."""
  h, w = pixels.shape[:2]
  rows = b"".join(b"\0" + pixels[y].astype(">u2").tobytes() for y in range(h))

  def chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

  path.write_bytes(b"\x89PNG\r\n\x1a\n"
                   + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0))
                   + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def test_16_bit_pngs_keep_their_values(tmp_path):
  """16-bit greyscale (PIL's I;16, which it clips to white) is scaled to
  8 bits as round(v / 257); 16-bit RGB keeps PIL's high byte."""
  gradient = (np.arange(32 * 32) * 64).reshape(32, 32).astype(np.uint16)  # 0 .. 65472
  expected = np.round(gradient / 257)
  Image.fromarray(gradient).save(tmp_path / "grey16.png")  # mode I;16
  assert Image.open(tmp_path / "grey16.png").mode == "I;16"
  grey = folder_lib.decode(tmp_path / "grey16.png", 32, 1)[..., 0]
  assert np.abs(grey - expected).max() <= 1
  rgb = folder_lib.decode(tmp_path / "grey16.png", 32, 3)
  assert np.abs(rgb - expected[..., None]).max() <= 1
  _png16(tmp_path / "rgb16.png", np.stack([gradient, 65535 - gradient, gradient // 2], -1), 2)
  rgb = folder_lib.decode(tmp_path / "rgb16.png", 32, 3)
  want = np.stack([expected, np.round((65535 - gradient) / 257), np.round(gradient / 2 / 257)],
                  -1)
  assert np.abs(rgb - want).max() <= 1


def test_exif_orientation_turns_a_photo_upright(tmp_path):
  """A JPEG stored sideways with EXIF orientation 6 (rotate 90 degrees
  clockwise to display) loads as it is displayed."""
  upright = np.broadcast_to(np.linspace(0, 255, 64)[:, None, None], (64, 32, 3))
  upright = upright.astype(np.uint8)  # 64 tall, 32 wide: dark at the top, light below
  stored = np.rot90(upright, 1)  # what a phone writes: 32 tall, 64 wide
  exif = Image.Exif()
  exif[0x0112] = 6
  Image.fromarray(np.ascontiguousarray(stored)).save(tmp_path / "photo.jpg", quality=95,
                                                     exif=exif)
  Image.fromarray(upright).save(tmp_path / "upright.png")
  got = folder_lib.decode(tmp_path / "photo.jpg", 32, 3).astype(int)
  want = folder_lib.decode(tmp_path / "upright.png", 32, 3).astype(int)
  assert np.abs(got - want).max() <= 8, np.abs(got - want).max()
  # A 16-bit greyscale PNG keeps its orientation through the scaling to 8 bits.
  Image.fromarray(np.ascontiguousarray(stored[..., 0]).astype(np.uint16) * 257).save(
      tmp_path / "photo16.png", exif=exif)
  got = folder_lib.decode(tmp_path / "photo16.png", 32, 1)[..., 0].astype(int)
  assert np.abs(got - want[..., 0]).max() <= 1


def _cache_file(tmp_path) -> Path:
  (path,) = (tmp_path / "cache" / "folders").glob("*.json")
  return path


def test_truncated_scan_cache_is_rebuilt_saying_so(tmp_path):
  _write_images(tmp_path / "photos", 6)
  assert len(folder_lib.open_folder(str(tmp_path / "photos"), 32, 3, log=lambda m: None)) == 6
  cache = _cache_file(tmp_path)
  cache.write_text(cache.read_text()[:40])
  said = []
  images = folder_lib.open_folder(str(tmp_path / "photos"), 32, 3, log=said.append)
  assert len(images) == 6
  assert len(said) == 1 and str(cache) in said[0] and "unreadable" in said[0], said
  said.clear()  # rebuilt: the next open uses it silently
  assert len(folder_lib.open_folder(str(tmp_path / "photos"), 32, 3, log=said.append)) == 6
  assert not said


def test_scan_cache_with_entries_dropped_is_rebuilt(tmp_path):
  _write_images(tmp_path / "photos", 6)
  folder_lib.open_folder(str(tmp_path / "photos"), 32, 3, log=lambda m: None)
  cache = _cache_file(tmp_path)
  cached = json.loads(cache.read_text())  # every list in it cut to its first two entries
  cache.write_text(json.dumps({k: v[:2] if isinstance(v, list) else v for k, v in cached.items()}))
  said = []
  images = folder_lib.open_folder(str(tmp_path / "photos"), 32, 3, log=said.append)
  assert images.files == tuple(f"{i:02d}.png" for i in range(6))
  assert len(said) == 1 and "lists 2 files where the folder holds 6" in said[0], said


_MEASURE = """
import json, resource, sys
from genjax.data import folder
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
images = folder.open_folder(sys.argv[1], 32, 3, threads=1)
decoded = [images[i][0] for i in range(len(images))]
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"growth_mb": (after - before) / 1024, "files": images.files,
                  "too_large": images.too_large}))
"""


def test_large_images_are_decoded_reduced_or_skipped_by_name(tmp_path):
  """A 6000x6000 PNG (108 MB decoded) above a 4-megapixel bound is skipped
  undecoded and named; a 6000x6000 JPEG is decoded at 1/8 scale. Peak memory
  stays far below one full decode."""
  photos = tmp_path / "photos"
  _write_images(photos, 2)
  Image.new("RGB", (6000, 6000), (200, 30, 60)).save(photos / "huge.png", compress_level=1)
  Image.new("RGB", (6000, 6000), (20, 130, 60)).save(photos / "huge.jpg", quality=50)
  env = dict(os.environ, PYTHONPATH=str(ROOT), GENJAX_MAX_MEGAPIXELS="4")
  proc = subprocess.run([sys.executable, "-c", _MEASURE, str(photos)], capture_output=True,
                        text=True, cwd=ROOT, env=env, timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  out = json.loads(proc.stdout)
  assert out["files"] == ["00.png", "01.png", "huge.jpg"] and out["too_large"] == ["huge.png"]
  assert out["growth_mb"] < 40, out  # one full decode of either image is 108 MB
  (line,) = [l for l in proc.stderr.splitlines() if "megapixels" in l]
  assert "huge.png" in line and "GENJAX_MAX_MEGAPIXELS" in line
  colour = folder_lib.decode(photos / "huge.jpg", 32, 3)[16, 16]  # reduced, same colour
  assert np.abs(colour.astype(int) - [20, 130, 60]).max() <= 4, colour


def test_a_file_name_that_is_not_utf8_is_skipped_by_its_bytes(tmp_path):
  photos = tmp_path / "photos"
  _write_images(photos, 3)
  name = os.fsencode(photos) + b"/caf\xff.png"
  fd = os.open(name, os.O_WRONLY | os.O_CREAT, 0o644)
  os.write(fd, (photos / "00.png").read_bytes())
  os.close(fd)
  said = []
  images = folder_lib.open_folder(str(photos), 32, 3, log=said.append)
  assert images.files == ("00.png", "01.png", "02.png")
  assert images.bad_names == (b"caf\xff.png",)
  (line,) = [m for m in said if "UTF-8" in m]
  assert repr(b"caf\xff.png") in line


def test_zero_threads_is_refused_by_name_before_anything_is_read(tmp_path):
  config = ml_collections.ConfigDict(dict(
      name="folder", path=str(tmp_path / "absent"), image_size=32, channels=3, labels="none",
      test_percent=5, pipeline="device", threads=0, limit=0))
  with pytest.raises(ValueError, match=r"^config\.data\.threads=0 must be an integer >= 1"):
    data.load_from_config(config, "train")
  _write_images(tmp_path / "photos", 3)
  env = dict(os.environ, PYTHONPATH=str(ROOT))
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.gan_folder", "--config=experiments/gan_folder.py:tiny",
       f"--config.data.path={tmp_path / 'photos'}", "--config.data.threads=0",
       f"--workdir={tmp_path / 'run'}"],
      capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
  assert proc.returncode == 1
  assert proc.stderr.strip().splitlines()[-1].startswith(
      "error: config.data.threads=0 must be an integer >= 1"), proc.stderr[-2000:]
  assert not (tmp_path / "cache").exists()  # nothing was read
