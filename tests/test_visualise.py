"""Gradient ascent on the input raises the chosen activation (genjax.metrics.visualise)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.metrics import features, visualise


@pytest.fixture(scope="module")
def mnist_network():
  network = features.load("mnist")
  return network.module, {"params": network.params}


@pytest.mark.parametrize("layer, channel", [("Dense_1", 3), ("Conv_2", 5), ("Conv_3", None)])
def test_ascent_raises_the_chosen_activation(mnist_network, layer, channel):
  objective = visualise.unit_objective(*mnist_network, layer, channel)
  start = 0.1 * jax.random.normal(jax.random.key(1), (2, 28, 28, 1))
  options = visualise.AscentOptions(steps=12, octaves=2, jitter=2, tv_weight=0.1)
  image, trace = visualise.ascend(objective, start, jax.random.key(0), options)
  assert image.shape == start.shape and trace.shape == (2 * 12 + 1, 2)
  assert float(jnp.abs(image).max()) <= 1.0
  assert np.all(np.asarray(trace[-1]) > 2 * np.asarray(trace[0]) + 1.0), trace[:, 0]


def test_class_ascent_makes_the_classifier_see_the_class(mnist_network):
  module, variables = mnist_network
  objective = visualise.unit_objective(module, variables, "Dense_1", channel=[7, 2, 0])
  start = 0.1 * jax.random.normal(jax.random.key(2), (3, 28, 28, 1))
  image, _ = visualise.ascend(objective, start, jax.random.key(0),
                              visualise.AscentOptions(steps=16, octaves=1))
  logits, _ = module.apply(variables, image)
  assert np.asarray(logits.argmax(-1)).tolist() == [7, 2, 0]


def test_total_variation_and_octave_sizes():
  x = jnp.zeros((2, 4, 4, 1)).at[0, :, 2:].set(1.0)  # one vertical edge in image 0
  np.testing.assert_allclose(visualise.total_variation(x), [1 / 3, 0.0], rtol=1e-6)
  assert visualise.octave_sizes((28, 28), 3, 2.0) == [(7, 7), (14, 14), (28, 28)]


def test_bad_layer_and_channel_are_named(mnist_network):
  x = jnp.zeros((1, 28, 28, 1))
  with pytest.raises(ValueError, match="'Conv_9'.*Conv_0"):
    visualise.unit_objective(*mnist_network, "Conv_9", 0)(x)
  with pytest.raises(ValueError, match="channel=10.*0..9"):
    visualise.unit_objective(*mnist_network, "Dense_1", 10)(x)
  with pytest.raises(ValueError, match=r"channel=\[1, 2\].*1 images"):
    visualise.unit_objective(*mnist_network, "Dense_1", [1, 2])(x)
  assert visualise.unit_objective(*mnist_network, "Conv_1", [4])(x).shape == (1,)
