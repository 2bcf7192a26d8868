"""The notebooks run top to bottom and show their figures."""

from pathlib import Path

import nbclient
import nbformat
import pytest

from tests.conftest import FASHION_MNIST_DIR

ROOT = Path(__file__).resolve().parents[1]


def _execute(name: str):
  notebook = nbformat.read(ROOT / "notebooks" / name, as_version=4)
  nbclient.NotebookClient(notebook, timeout=900, kernel_name="python3",
                          resources={"metadata": {"path": str(ROOT)}}).execute()
  return notebook


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
