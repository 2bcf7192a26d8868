"""Image grids and PNG files."""

import math
from pathlib import Path

import numpy as np
from PIL import Image


def grid(images: np.ndarray, ncol: int | None = None, pad: int = 2) -> np.ndarray:
  """[N, H, W, C] uint8 -> one [rows*(H+pad)+pad, ncol*(W+pad)+pad, C] image."""
  n, h, w, c = images.shape
  ncol = ncol or math.ceil(math.sqrt(n))
  nrow = math.ceil(n / ncol)
  out = np.full((nrow * (h + pad) + pad, ncol * (w + pad) + pad, c), 255, np.uint8)
  for i, image in enumerate(images):
    r, q = divmod(i, ncol)
    out[pad + r * (h + pad): pad + r * (h + pad) + h, pad + q * (w + pad): pad + q * (w + pad) + w] = image
  return out


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
  """[H, W, C] -> [factor*H, factor*W, C], each pixel a factor x factor block."""
  return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def save_png(path: Path, image: np.ndarray) -> None:
  """Writes an [H, W, 1|3] uint8 image, creating parent folders."""
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(path)


def scatter(points: np.ndarray, labels: np.ndarray, size: int = 480) -> np.ndarray:
  """A 2-D scatter plot coloured by class, rendered to uint8 [size, size, 3].

  Drawn on its own Agg canvas, without pyplot, so the caller's matplotlib
  backend (a notebook's inline one) is left alone.
  """
  # pylint: disable=g-import-not-at-top
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure

  fig = Figure(figsize=(size / 100, size / 100), dpi=100)
  canvas = FigureCanvasAgg(fig)
  ax = fig.add_subplot()
  sc = ax.scatter(points[:, 0], points[:, 1], c=labels, cmap="tab10", s=2, alpha=0.7)
  fig.colorbar(sc, ax=ax, ticks=range(10))
  ax.set_xlabel("z[0]")
  ax.set_ylabel("z[1]")
  fig.tight_layout()
  canvas.draw()
  return np.asarray(canvas.buffer_rgba())[..., :3].copy()
