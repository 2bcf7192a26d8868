"""Transparent and greyscale images in a folder: composited on data.background,
converted to the model's channels, and each kind counted once in the log."""

import json

import ml_collections
import numpy as np
import pytest
from PIL import Image

from experiments import gan_folder
from genjax import configs, data
from genjax.data import folder as folder_lib


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
  monkeypatch.setenv("GENJAX_CACHE", str(tmp_path / "cache"))


def _half_transparent(colour=(200, 30, 60), stored=(0, 0, 0)) -> Image.Image:
  """32x32 RGBA: left half opaque `colour`, right half fully transparent with `stored` RGB."""
  pixels = np.zeros((32, 32, 4), np.uint8)
  pixels[:, :16] = (*colour, 255)
  pixels[:, 16:] = (*stored, 0)
  return Image.fromarray(pixels, "RGBA")


def _mixed_folder(root):
  """2 RGBA half-transparent, 1 LA half-transparent, 1 palette with a
  transparent index, 2 opaque RGB, 3 greyscale: 9 images."""
  root.mkdir()
  for i in range(2):
    _half_transparent().save(root / f"rgba{i}.png")
  grey = np.zeros((32, 32, 2), np.uint8)
  grey[:, :16] = (90, 255)
  Image.fromarray(grey, "LA").save(root / "la.png")
  palette = Image.new("P", (32, 32), 0)
  palette.putpalette([0, 0, 0, 10, 200, 10] + [0] * 762)
  palette.paste(1, (0, 0, 16, 32))
  palette.save(root / "palette.png", transparency=0)
  rng = np.random.default_rng(0)
  for i in range(2):
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), np.uint8)).save(root / f"rgb{i}.png")
  for i in range(3):
    Image.fromarray(rng.integers(0, 256, (32, 32), np.uint8), "L").save(root / f"grey{i}.png")


@pytest.mark.parametrize("background, rgb", [("white", (255, 255, 255)), ("black", (0, 0, 0)),
                                             ("#3366cc", (0x33, 0x66, 0xcc))])
def test_a_transparent_half_is_the_background_colour(tmp_path, background, rgb):
  _half_transparent(stored=(250, 0, 250)).save(tmp_path / "a.png")  # magenta under alpha 0
  colour = folder_lib.parse_background(background)
  out = folder_lib.decode(tmp_path / "a.png", 32, 3, background=colour)
  assert (out[:, 20:] == rgb).all()  # the transparent half, away from the resize's seam
  assert (out[:, :12] == (200, 30, 60)).all()  # the opaque half unchanged
  grey = folder_lib.decode(tmp_path / "a.png", 32, 1, background=colour)[..., 0]
  assert (grey[:, 20:] == round(0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2])).all()


def test_background_none_keeps_the_stored_colours_as_before(tmp_path):
  _half_transparent(stored=(250, 0, 250)).save(tmp_path / "a.png")
  out = folder_lib.decode(tmp_path / "a.png", 32, 3, background=None)
  assert (out[:, 20:] == (250, 0, 250)).all()


def test_the_folder_says_how_many_images_are_composited_and_converted(tmp_path):
  _mixed_folder(tmp_path / "mixed")
  said = []
  rgb = folder_lib.open_folder(str(tmp_path / "mixed"), 32, 3, background="#102030",
                               log=said.append)
  assert len(rgb) == 9 and rgb.background == (0x10, 0x20, 0x30)
  assert any("4 of 9 images have transparent pixels, composited on #102030" in m
             for m in said), said
  assert any("4 of 9 images are greyscale, converted to RGB (data.channels=3)" in m
             for m in said), said  # 3 L and the LA
  index = rgb.files.index("palette.png")
  assert (rgb[index][0][:, 20:] == (0x10, 0x20, 0x30)).all()  # palette transparency too
  assert (rgb[rgb.files.index("la.png")][0][:, 20:] == (0x10, 0x20, 0x30)).all()
  said.clear()
  folder_lib.open_folder(str(tmp_path / "mixed"), 32, 1, log=said.append)
  assert any("5 of 9 images are colour, converted to greyscale (data.channels=1)" in m
             for m in said), said
  said.clear()
  folder_lib.open_folder(str(tmp_path / "mixed"), 32, 3, background="none", log=said.append)
  assert any("4 of 9 images have transparent pixels, kept at their stored colours" in m
             for m in said), said


def test_an_opaque_rgb_folder_says_nothing_about_conversion(tmp_path):
  (tmp_path / "photos").mkdir()
  rng = np.random.default_rng(1)
  for i in range(3):
    pixels = rng.integers(0, 256, (32, 32, 4), np.uint8)
    pixels[..., 3] = 255  # RGBA, every pixel opaque
    Image.fromarray(pixels, "RGBA").save(tmp_path / "photos" / f"{i}.png")
  said = []
  folder_lib.open_folder(str(tmp_path / "photos"), 32, 3, log=said.append)
  assert not [m for m in said if "transparent" in m or "converted" in m], said


def test_a_bad_background_is_refused_by_name(tmp_path):
  _half_transparent().save(tmp_path / "a.png")
  with pytest.raises(folder_lib.FolderError, match=r"data.background='#12345'.*#rrggbb"):
    folder_lib.open_folder(str(tmp_path), 32, 3, background="#12345")


def test_the_config_key_reaches_the_loader_and_older_runs_keep_their_alpha(tmp_path):
  _mixed_folder(tmp_path / "mixed")
  config = gan_folder.get_config()
  assert config.data.background == "white"
  config.data.path, config.data.image_size, config.data.test_percent = str(
      tmp_path / "mixed"), 32, 0
  config.data.background = "black"
  split = data.folder_split(config.data, "train")
  composited = split[split.examples.files.index("rgba0.png")][0]
  assert (composited[:, 20:] == 0).all() and (composited[:, :12] == (200, 30, 60)).all()
  old = json.loads(config.to_json())
  del old["data"]["background"]
  upgraded = configs.upgrade(ml_collections.ConfigDict(old))
  assert upgraded.data.background == "none"  # what runs before the key did
  mnist = configs.upgrade(ml_collections.ConfigDict({"family": "gan", "data": {"name": "mnist"}}))
  assert "background" not in mnist.data  # only configs of a folder gain the key
