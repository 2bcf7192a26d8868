"""Image grids, PNG files and plots of a run's scalars."""

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


def plot_scalar(ax, scalars: dict, name: str, label: str | None = None,
                groups: list[str] | None = None) -> None:
  """Draws the scalar `name` ("eval/fid") against steps on a matplotlib Axes.

  `scalars` is `genjax.train.workdir.read_scalars(workdir)`'s {tag: (steps,
  values)}. A population's run has `name/member_m` per member: each is a
  thin line, and the mean ± standard deviation (n-1) over the members at the
  steps where every member has a value is a thick line with a band. A single
  run's `name` is one line.

  `groups` (a label per member, `member_groups`) splits a swept population:
  the members with the same label (its seeds) share a colour and their own
  mean ± std band; a group of one is a line with the group's label.
  """
  prefix = f"{name}/member_"
  members = {int(tag[len(prefix):]): curve for tag, curve in scalars.items()
             if tag.startswith(prefix) and tag[len(prefix):].isdigit()}
  if not members:
    if name not in scalars:
      raise KeyError(f"no scalar {name!r}; the run has {', '.join(sorted(scalars)) or 'none'}.")
    steps, values = scalars[name]
    ax.plot(steps, values, marker="o", markersize=3, label=label)
  elif groups is None:
    for m, (steps, values) in sorted(members.items()):
      ax.plot(steps, values, linewidth=1, alpha=0.6, label=f"member {m}")
    _band(ax, list(members.values()), "black", label or f"mean ± std of {len(members)}")
  else:
    if len(groups) < max(members) + 1:
      raise ValueError(f"groups names {len(groups)} members; the run has {max(members) + 1}.")
    for i, group in enumerate(dict.fromkeys(groups)):
      color = f"C{i % 10}"
      curves = [members[m] for m in sorted(members) if groups[m] == group]
      for steps, values in curves:
        single = len(curves) == 1
        ax.plot(steps, values, color=color, linewidth=1.5 if single else 1,
                alpha=1.0 if single else 0.5, marker="o" if single else None, markersize=3,
                label=group if single else None)
      if len(curves) > 1:
        _band(ax, curves, color, f"{group}: mean ± std of {len(curves)}")
  from matplotlib import ticker  # pylint: disable=g-import-not-at-top

  # Steps as 2k, 16k: five-digit labels run into each other on a small panel.
  ax.xaxis.set_major_locator(ticker.MaxNLocator(nbins=6, steps=[1, 2, 5, 10], integer=True))
  ax.xaxis.set_major_formatter(ticker.FuncFormatter(
      lambda v, _: f"{v / 1000:g}k" if abs(v) >= 1000 else f"{v:g}"))
  ax.set_xlabel("step")
  ax.set_ylabel(name.removeprefix("eval/").removeprefix("train/"))
  ax.grid(alpha=0.3)
  if ax.get_legend_handles_labels()[0]:
    ax.legend(fontsize=7)


def _band(ax, curves: list, color: str, label: str) -> None:
  """The mean ± std (n-1) of `curves` [(steps, values)] at their common steps."""
  common = sorted(set.intersection(*(set(s.tolist()) for s, _ in curves)))
  if len(curves) > 1 and common:
    stacked = np.stack([v[np.searchsorted(s, common)] for s, v in curves])
    mean, std = stacked.mean(0), stacked.std(0, ddof=1)
    ax.plot(common, mean, color=color, linewidth=2, label=label)
    ax.fill_between(common, mean - std, mean + std, color=color, alpha=0.15)


def member_groups(swept: dict) -> list[str] | None:
  """A label per member from a population's swept values ('opt.g_lr=0.0005,
  opt.d_lr=0.0002'; `genjax.train.members.Members.swept`), the seeds of one
  combination alike; None where nothing is swept."""
  if not swept:
    return None
  count = len(next(iter(swept.values())))
  return [", ".join(f"{k.rsplit('.', 1)[-1]}={v[m]:g}" for k, v in swept.items())
          for m in range(count)]


def save_scalar_plot(path: Path, scalars: dict, names: list[str], title: str = "",
                     groups: list[str] | None = None) -> None:
  """A PNG with one panel per scalar in `names` (`plot_scalar` each, with
  `groups`), drawn on its own Agg canvas (no pyplot state)."""
  # pylint: disable=g-import-not-at-top
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure

  fig = Figure(figsize=(4.2 * len(names), 3.2), dpi=100, layout="constrained")
  FigureCanvasAgg(fig)
  for i, name in enumerate(names):
    plot_scalar(fig.add_subplot(1, len(names), i + 1), scalars, name, groups=groups)
  if title:
    fig.suptitle(title, fontsize=10)
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(path, metadata={"Software": None})
