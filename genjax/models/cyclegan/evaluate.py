"""CycleGAN evaluations: translation grids and translation metrics.

On every test split: the cycle-reconstruction L1 both ways. On a paired test
split (edges2fashion, where b[i] is the truth for a[i]): the A -> B L1,
PSNR and SSIM against the truth, on [0, 1] pixels (genjax.metrics.image_quality), and, where the
domains have a feature network (edges2fashion: Fashion-MNIST's), the FID of
the A -> B translations against the B test images in it (`ab_fid`, as
pix2pix reports its outputs' FID) and the share of B -> A translations it
classifies as the source image's class.
"""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from genjax import images as images_lib
from genjax import viz
from genjax.data import unpaired
from genjax.metrics import features, image_quality
from genjax.models.cyclegan import step as cyclegan


def translation_metrics(state: cyclegan.CycleGANState, test: unpaired.UnpairedDataset,
                        batch: int = 250, classifier=None) -> dict:
  """Cycle L1 both ways; for a paired test split, A->B L1 and PSNR against the
  truth; with a classifier of domain A, the share of B->A translations of
  paired test images classified as their source image's label."""
  translate = cyclegan.translate
  ab = jax.jit(lambda s, x: (lambda y: (y, translate(s, y, "ba")))(translate(s, x, "ab")))
  ba = jax.jit(lambda s, x: (lambda y: (y, translate(s, y, "ab")))(translate(s, x, "ba")))
  sums = {"cycle_l1_a": 0.0, "cycle_l1_b": 0.0, "ab_l1": 0.0, "ab_psnr": 0.0, "ab_ssim": 0.0}
  n = len(test)
  recognised = 0
  translated, truth = [], []
  for i in range(0, n, batch):
    xa = jnp.asarray(images_lib.to_float(test.a.images[i:i + batch]))
    xb = jnp.asarray(images_lib.to_float(test.b.images[i:i + batch]))
    fake_b, rec_a = ab(state, xa)
    fake_a, rec_b = ba(state, xb)
    sums["cycle_l1_a"] += float(jnp.sum(jnp.mean(jnp.abs(rec_a - xa), axis=(1, 2, 3))))
    sums["cycle_l1_b"] += float(jnp.sum(jnp.mean(jnp.abs(rec_b - xb), axis=(1, 2, 3))))
    if test.paired:
      # Errors on the [0, 1] pixel scale; PSNR from the mean squared error of each image.
      diff = (fake_b - xb) / 2.0
      sums["ab_l1"] += float(jnp.sum(jnp.mean(jnp.abs(diff), axis=(1, 2, 3))))
      mse = jnp.maximum(jnp.mean(diff**2, axis=(1, 2, 3)), 1e-10)
      sums["ab_psnr"] += float(jnp.sum(10.0 * jnp.log10(1.0 / mse)))
      sums["ab_ssim"] += float(jnp.sum(image_quality.ssim(fake_b, xb)))
      if classifier is not None:
        translated.append(images_lib.to_uint8(fake_b))
        truth.append(test.b.images[i:i + batch])
        logits, _ = classifier(np.asarray(fake_a))
        recognised += int(np.sum(logits.argmax(1) == test.a.labels[i:i + batch]))
  out = {"cycle_l1_a": sums["cycle_l1_a"] / n, "cycle_l1_b": sums["cycle_l1_b"] / n,
         "num_test_pairs": n}
  if test.paired:
    out.update(ab_l1=sums["ab_l1"] / n, ab_psnr_db=sums["ab_psnr"] / n,
               ab_ssim=sums["ab_ssim"] / n)
    if classifier is not None:
      out["ba_class_recognised"] = recognised / n
      out["ab_fid"] = features.frechet_between(classifier, np.concatenate(translated),
                                               np.concatenate(truth))
  return out


def _classifier(config):
  """The Fashion-MNIST feature network for edges2fashion, else None."""
  if config.data.name != unpaired.EDGES2FASHION:
    return None
  return features.load("fashion_mnist")


def evaluate_metrics(state, config, test, key, *, progress=None) -> dict:
  """genjax.evaluate's metrics of a CycleGAN run on its test split."""
  del key
  classifier = _classifier(config)
  result = translation_metrics(state, test, classifier=classifier)
  if classifier is not None:  # the features ab_fid is in, as pix2pix's results name theirs
    result["feature_network"] = {k: classifier.record[k] for k in ("sha256", "test_accuracy")}
  if progress is not None:
    progress(len(test))
  return result


def make_evaluator(config: ml_collections.ConfigDict, key: jax.Array, test):
  """state -> (translation grids A->B->A and B->A->B, test-split metrics on up to 500 pairs)."""
  del key
  num = min(config.num_eval_samples, len(test))
  xa = jnp.asarray(images_lib.to_float(test.a.images[:num]))
  xb = jnp.asarray(images_lib.to_float(test.b.images[:num]))
  small = test.take(500)
  classifier = _classifier(config)
  translate = cyclegan.translate

  @jax.jit
  def grids(state):
    fake_b = translate(state, xa, "ab")
    fake_a = translate(state, xb, "ba")
    return (jnp.concatenate([xa, fake_b, translate(state, fake_b, "ba")]),
            jnp.concatenate([xb, fake_a, translate(state, fake_a, "ab")]))

  def evaluate(state):
    ab, ba = grids(state)
    images = {"translation_a2b": viz.grid(images_lib.to_uint8(ab), ncol=num),
              "translation_b2a": viz.grid(images_lib.to_uint8(ba), ncol=num)}
    return images, translation_metrics(state, small, classifier=classifier)

  return evaluate
