"""The notebooks run top to bottom and show their figures.

Each runs in memory from the file in notebooks/ (whose stored outputs are
left as they are); those that read GENJAX_NOTEBOOK_QUICK train shorter here.
"""

import re
from pathlib import Path

import nbclient
import nbformat
import pytest

from tests.conftest import FASHION_MNIST_DIR

ROOT = Path(__file__).resolve().parents[1]


def _execute(name: str):
  path = ROOT / "notebooks" / name
  stored = path.read_bytes()
  notebook = nbformat.read(path, as_version=4)
  nbclient.NotebookClient(notebook, timeout=900, kernel_name="python3",
                          resources={"metadata": {"path": str(ROOT)}}).execute()
  assert path.read_bytes() == stored  # the stored outputs are the full run's
  return notebook


@pytest.fixture
def quick(monkeypatch):
  """The notebook's kernel inherits GENJAX_NOTEBOOK_QUICK=1: a shorter run."""
  monkeypatch.setenv("GENJAX_NOTEBOOK_QUICK", "1")


def _images(notebook) -> int:
  return sum("image/png" in out.get("data", {})
             for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs)


def _text(notebook) -> str:
  return "".join(out.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                 for out in cell.outputs)


def _needs_fashion_mnist():
  if not FASHION_MNIST_DIR.exists():
    pytest.skip(f"needs Fashion-MNIST in {FASHION_MNIST_DIR}: `apt-get install "
                "dataset-fashion-mnist` (.ci/run does)")


def test_gan_walkthrough_trains_and_evaluates():
  notebook = _execute("gan_walkthrough.ipynb")
  assert _images(notebook) >= 5  # step 0, three training stages, class shares
  text = _text(notebook)
  assert "real training images" in text and "fid" in text


def test_vae_latent_space():
  _needs_fashion_mnist()
  notebook = _execute("vae_latent_space.ipynb")
  assert _images(notebook) >= 4  # reconstructions, scatter, manifold, interpolation


def test_cyclegan_translation():
  _needs_fashion_mnist()
  notebook = _execute("cyclegan_translation.ipynb")
  assert _images(notebook) >= 3  # the data, and a grid per direction
  text = _text(notebook)
  assert "ab_psnr_db" in text and "ba_class_recognised" in text


def test_deepdream_raises_the_chosen_activations(quick):
  del quick
  notebook = _execute("deepdream.ipynb")
  assert _images(notebook) >= 8  # 2 class grids, the trace, regularisers, 2 layers, 2 real
  text = _text(notebook)
  rises = re.findall(r"(Conv_\d): mean activation (-?[\d.]+) -> (-?[\d.]+)", text)
  assert [layer for layer, _, _ in rises] == ["Conv_1", "Conv_3"], text
  assert all(float(after) > float(before) for _, before, after in rises), rises
  assert "mnist p(class):" in text and "classified [" in text
  assert "Inception-v3 skipped" in text or "Mixed_5b channel 5:" in text


def test_populations_plots_fid_per_member(quick):
  del quick
  notebook = _execute("populations.ipynb")
  assert _images(notebook) >= 3  # FID per member and per value, best and worst samples
  text = _text(notebook)
  assert "member 3 (seed 1, opt.g_lr=0.001)" in text, text
  assert len(re.findall(r"g_lr [\d.e-]+: final FID [\d.]+ ± [\d.]+", text)) == 2, text


def test_progan_phases_and_mid_fade(quick):
  _needs_fashion_mnist()
  del quick
  notebook = _execute("progan.ipynb")
  assert _images(notebook) >= 4  # schedule, phase grids, mid-fade, logged scalars
  text = _text(notebook)
  assert "levels 4 (4, 8, 16, 32 px)" in text
  mid = re.search(r"level (\d) \((\d+) px\), trained at alpha ([\d.]+)", text)
  assert mid and mid.group(1) == "3" and 0.0 < float(mid.group(3)) < 1.0, text


def test_few_images_measures_d_on_train_held_out_and_fakes(quick):
  del quick
  notebook = _execute("few_images.ipynb")
  assert _images(notebook) >= 5  # D's outputs, ADA's p and r_t, samples per run
  text = _text(notebook)
  assert "training on 1000 images" in text
  assert text.count("D(train) - D(held out) by step:") == 3, text  # none, DiffAugment, ADA
  assert "p at the last step:" in text  # ADA's probability, read back from TensorBoard
