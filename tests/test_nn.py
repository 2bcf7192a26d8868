"""Module shapes and the sub-pixel upsampling layout."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.nn import dcgan, layers


def test_depth_to_space_matches_tensorflow_layout():
  # TF: out[b, h*2+i, w*2+j, c] = in[b, h, w, (i*2 + j)*C + c]
  x = np.arange(1 * 2 * 3 * 8, dtype=np.float32).reshape(1, 2, 3, 8)
  y = np.asarray(layers.depth_to_space(jnp.asarray(x), 2))
  chex.assert_shape(y, (1, 4, 6, 2))
  for h, w, i, j, c in np.ndindex(2, 3, 2, 2, 2):
    assert y[0, h * 2 + i, w * 2 + j, c] == x[0, h, w, (i * 2 + j) * 2 + c]


@pytest.mark.parametrize("size,channels", [(28, 1), (32, 3)])
@pytest.mark.parametrize("method", layers.UPSAMPLE_METHODS)
def test_generator_and_discriminator_shapes(size, channels, method):
  g = dcgan.Generator(image_size=size, channels=channels, width=8, upsample=method)
  d = dcgan.Discriminator(width=8, num_layers=2)
  z = jax.random.normal(jax.random.key(0), (3, 16))
  g_vars = g.init(jax.random.key(1), z)
  x, _ = g.apply(g_vars, z, mutable=["batch_stats"])
  chex.assert_shape(x, (3, size, size, channels))
  assert float(jnp.max(jnp.abs(x))) <= 1.0
  logits = d.apply(d.init(jax.random.key(2), x), x)
  chex.assert_shape(logits, (3,))


def test_unsupported_image_size_named():
  g = dcgan.Generator(image_size=30)
  with pytest.raises(ValueError, match="30"):
    g.init(jax.random.key(0), jnp.zeros((1, 4)))
