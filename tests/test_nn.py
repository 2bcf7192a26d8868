"""Module shapes and the sub-pixel upsampling layout."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.models.cyclegan import networks as cyclegan
from genjax.models.gan import networks as dcgan
from genjax.models.pix2pix import networks as p2p_nets
from genjax.nn import layers


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


@pytest.mark.parametrize("kernel,features,shape", [
    ((3, 3), 1, (2, 9, 7, 5)),  # the generator's output: matmul to taps
    ((4, 4), 3, (2, 8, 8, 6)),  # even kernel: SAME pads one less before
    ((5, 3), 2, (1, 6, 5, 4)),
    ((3, 3), 8, (2, 5, 5, 3)),  # more channels: a convolution
    ((1, 1), 8, (2, 5, 6, 3)),  # 1x1 at any width: a matrix product
    ((1, 1), 2, (2, 5, 6, 7)),
])
def test_conv_is_nn_conv(kernel, features, shape):
  x = jax.random.normal(jax.random.key(0), shape)
  ours, ref = layers.Conv(features, kernel), nn.Conv(features, kernel, padding="SAME")
  variables = ours.init(jax.random.key(1), x)
  ref_variables = ref.init(jax.random.key(1), x)
  chex.assert_trees_all_equal_shapes_and_dtypes(variables, ref_variables)
  variables = jax.tree.map(  # a nonzero bias and a kernel other than init's
      lambda v: v + 0.3 * jax.random.normal(jax.random.key(2), v.shape), variables)
  np.testing.assert_allclose(ours.apply(variables, x), ref.apply(variables, x), atol=1e-5)
  grads = [jax.grad(lambda v, x: jnp.sum(m.apply(v, x) ** 3), argnums=(0, 1))(variables, x)
           for m in (ours, ref)]
  chex.assert_trees_all_close(grads[0], grads[1], atol=1e-4, rtol=1e-4)


def test_conv_refuses_other_padding_and_strides():
  with pytest.raises(ValueError, match="'VALID'"):
    layers.Conv(1, (3, 3), padding="VALID").init(jax.random.key(0), jnp.zeros((1, 4, 4, 2)))
  with pytest.raises(ValueError, match="strides 1 and 2, got 3"):
    layers.Conv(1, (3, 3), strides=3).init(jax.random.key(0), jnp.zeros((1, 4, 4, 2)))


@pytest.mark.parametrize("kernel,shape", [((4, 4), (2, 14, 14, 5)), ((3, 3), (2, 9, 7, 3)),
                                          ((4, 2), (1, 7, 8, 2))])
def test_strided_conv_is_nn_conv_to_the_second_derivative(kernel, shape):
  """Values, gradients and the gradient of an input-gradient norm (a WGAN-GP
  penalty) equal nn.Conv's, so the custom second derivative is exact."""
  x = jax.random.normal(jax.random.key(0), shape)
  ours, ref = layers.Conv(6, kernel, strides=2), nn.Conv(6, kernel, strides=(2, 2), padding="SAME")
  variables = ours.init(jax.random.key(1), x)
  chex.assert_trees_all_equal_shapes_and_dtypes(variables, ref.init(jax.random.key(1), x))
  variables = jax.tree.map(lambda v: v + 0.3 * jax.random.normal(jax.random.key(2), v.shape),
                           variables)
  np.testing.assert_allclose(ours.apply(variables, x), ref.apply(variables, x), atol=1e-5)

  def penalty(module):
    def f(v, x):
      # A nonlinearity between the conv and the sum, as in a discriminator.
      dx = jax.grad(lambda x: jnp.sum(jnp.tanh(module.apply(v, x))))(x)
      return jnp.sum((jnp.sqrt(jnp.sum(dx ** 2, axis=(1, 2, 3))) - 1) ** 2)
    return f

  for order in (lambda m: lambda v, x: jnp.sum(m.apply(v, x) ** 3), penalty):
    grads = [jax.grad(order(m), argnums=(0, 1))(variables, x) for m in (ours, ref)]
    chex.assert_trees_all_close(grads[0], grads[1], atol=1e-4, rtol=1e-4)
    assert float(jnp.abs(grads[0][0]["params"]["kernel"]).max()) > 1e-3  # not vacuous


@pytest.mark.parametrize("method", layers.UPSAMPLE_METHODS)
def test_upsample_per_pixel_is_applied_to_the_output(method):
  # Batch norm before the pixel shuffle (subpixel) equals batch norm after it.
  x = jax.random.normal(jax.random.key(0), (3, 4, 5, 6))
  up = layers.Upsample2x(4, method)
  bn = nn.BatchNorm(use_running_average=False)
  variables = up.init(jax.random.key(1), x)
  bn_vars = bn.init(jax.random.key(2), jnp.zeros((1, 4)))
  bn_vars = jax.tree.map(lambda v: v + jnp.arange(4.0), bn_vars)  # per-channel, distinct

  def per_pixel(rows):
    assert rows.shape == (3 * 8 * 10, 4)
    return jnp.tanh(bn.apply(bn_vars, rows, mutable=["batch_stats"])[0])

  inside = up.apply(variables, x, per_pixel)
  plain = up.apply(variables, x)
  after = per_pixel(plain.reshape(-1, 4)).reshape(plain.shape)
  chex.assert_shape(inside, (3, 8, 10, 4))
  np.testing.assert_allclose(inside, after, atol=1e-5)
  assert float(jnp.max(jnp.abs(inside - plain))) > 0.1  # per_pixel did something


@pytest.mark.parametrize("kernel,shape", [((3, 3), (2, 5, 7, 3)), ((4, 4), (1, 6, 6, 2)),
                                          ((2, 5), (2, 4, 3, 3)), ((1, 1), (1, 3, 3, 2))])
def test_conv_transpose_is_nn_conv_transpose(kernel, shape):
  """The sub-pixel form has nn.ConvTranspose's (stride 2, SAME) variables,
  values and gradients: checkpoints of either load into the other."""
  x = jax.random.normal(jax.random.key(0), shape)
  ours = layers.ConvTranspose(4, kernel)
  ref = nn.ConvTranspose(4, kernel, strides=(2, 2), padding="SAME")
  variables = ours.init(jax.random.key(1), x)
  chex.assert_trees_all_equal_shapes_and_dtypes(variables, ref.init(jax.random.key(1), x))
  variables = jax.tree.map(lambda v: v + 0.3 * jax.random.normal(jax.random.key(2), v.shape),
                           variables)
  out = ours.apply(variables, x)
  assert out.shape == (shape[0], 2 * shape[1], 2 * shape[2], 4)
  np.testing.assert_allclose(out, ref.apply(variables, x), atol=1e-5)
  grads = [jax.grad(lambda v, x: jnp.sum(m.apply(v, x) ** 3), argnums=(0, 1))(variables, x)
           for m in (ours, ref)]
  chex.assert_trees_all_close(grads[0], grads[1], atol=1e-4, rtol=1e-4)
  assert float(jnp.abs(grads[0][0]["params"]["kernel"]).max()) > 1e-3  # not vacuous


@pytest.mark.parametrize("shape", [(2, 8, 6, 3), (1, 2, 2, 5), (3, 16, 16, 1)])
def test_pix2pix_strided_convolutions_are_nn_conv_and_nn_conv_transpose(shape):
  """pix2pix's 4x4 stride-2 convolution (padding 1) and transposed convolution
  (SAME), computed as stride-1 convolutions, are flax's in variables, values
  and both gradients."""
  x = jax.random.normal(jax.random.key(0), shape)
  pairs = [(p2p_nets.Conv(4), nn.Conv(4, (4, 4), (2, 2), padding=((1, 1), (1, 1)),
                                      kernel_init=p2p_nets._init)),  # pylint: disable=protected-access
           (p2p_nets.ConvTranspose(4), nn.ConvTranspose(4, (4, 4), (2, 2), padding="SAME"))]
  for ours, ref in pairs:
    variables = ours.init(jax.random.key(1), x)
    chex.assert_trees_all_equal_shapes_and_dtypes(variables, ref.init(jax.random.key(1), x))
    variables = jax.tree.map(lambda v: v + 0.3 * jax.random.normal(jax.random.key(2), v.shape),
                             variables)
    np.testing.assert_allclose(ours.apply(variables, x), ref.apply(variables, x), atol=1e-5)
    grads = [jax.grad(lambda v, x, m=m: jnp.sum(m.apply(v, x) ** 3), argnums=(0, 1))(variables, x)
             for m in (ours, ref)]
    chex.assert_trees_all_close(grads[0], grads[1], atol=1e-4, rtol=1e-4)
    assert float(jnp.abs(grads[0][0]["params"]["kernel"]).max()) > 1e-3  # not vacuous


def test_conv_transpose_keeps_a_lower_precision_dtype():
  x = jax.random.normal(jax.random.key(0), (1, 5, 5, 3))
  ours = layers.ConvTranspose(4, (3, 3), dtype=jnp.bfloat16)
  ref = nn.ConvTranspose(4, (3, 3), strides=(2, 2), padding="SAME", dtype=jnp.bfloat16)
  variables = ours.init(jax.random.key(1), x)
  out = ours.apply(variables, x)
  assert out.dtype == jnp.bfloat16 and out.shape == (1, 10, 10, 4)
  np.testing.assert_allclose(out.astype(jnp.float32), ref.apply(variables, x).astype(jnp.float32),
                             atol=0.05, rtol=0.05)


def test_icnr_starts_subpixel_upsampling_as_nearest_neighbour():
  """ICNR: the four sub-pixels of every 2x2 output block are equal at
  initialisation (no checkerboard to unlearn); without it they differ."""
  x = jax.random.normal(jax.random.key(0), (2, 7, 7, 16))

  def blocks(icnr):
    module = layers.Upsample2x(8, "subpixel", 3, icnr=icnr)
    y = module.apply(module.init(jax.random.key(1), x), x)  # [2, 14, 14, 8]
    return y.reshape(2, 7, 2, 7, 2, 8)

  y = blocks(True)
  for dy in (0, 1):
    for dx in (0, 1):
      np.testing.assert_array_equal(y[:, :, dy, :, dx], y[:, :, 0, :, 0])
  assert float(jnp.std(y)) > 0.1  # not a trivial zero output
  plain = blocks(False)
  assert float(jnp.abs(plain[:, :, 0, :, 0] - plain[:, :, 1, :, 1]).mean()) > 0.1
  generator = dcgan.Generator(image_size=28, width=8, icnr=True)
  z = jax.random.normal(jax.random.key(2), (4, 16))
  variables = generator.init(jax.random.key(3), z, train=False)
  kernel = variables["params"]["Upsample2x_0"]["Conv_0"]["kernel"]  # [3, 3, C, 4*F]
  quarters = jnp.split(kernel, 4, axis=-1)
  assert all(bool(jnp.all(q == quarters[0])) for q in quarters)


def test_grid_upscale_repeats_each_pixel():
  from genjax import viz

  image = np.arange(6, dtype=np.uint8).reshape(2, 3, 1)
  big = viz.upscale(image, 2)
  assert big.shape == (4, 6, 1)
  np.testing.assert_array_equal(big[::2, ::2], image)
  np.testing.assert_array_equal(big[1::2, 1::2], image)


@pytest.mark.parametrize("shape, p", [((2, 9, 9, 4), 3), ((1, 7, 5, 2), 1), ((3, 4, 4, 1), 3),
                                      ((1, 2, 3, 2), 3)])  # p > H - 1: reflected again
def test_reflect_pad_is_jnp_pad_reflect_with_its_gradient(shape, p):
  x = jax.random.normal(jax.random.key(0), shape)
  reference = lambda x: jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), mode="reflect")
  np.testing.assert_array_equal(cyclegan.reflect_pad(x, p), reference(x))
  weights = jax.random.normal(jax.random.key(1), reference(x).shape)
  grad = lambda pad: jax.grad(lambda x: jnp.sum(pad(x) * weights))(x)
  np.testing.assert_allclose(grad(lambda x: cyclegan.reflect_pad(x, p)), grad(reference),
                             rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("shape", [(4, 5, 3, 6), (2, 1, 1, 8)])
def test_channel_sums_and_their_gradients_are_jnp_sums(shape):
  """channel_sum (a product with ones) and per_channel (a broadcast whose
  gradient is channel_sum) compute what jnp.sum and broadcasting do."""
  x = jax.random.normal(jax.random.key(0), shape)
  v = jax.random.normal(jax.random.key(1), shape[-1:])
  np.testing.assert_allclose(layers.channel_sum(x), x.sum((0, 1, 2)), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(layers.channel_mean(x), x.mean((0, 1, 2)), rtol=1e-5, atol=1e-6)

  def f(x, v, ours):
    s = layers.channel_sum(x) if ours else x.sum((0, 1, 2))
    b = layers.per_channel(v * s, x.shape) if ours else (v * s)[None, None, None]
    return jnp.sum(jnp.sin(x * b))

  ours, ref = (jax.grad(f, argnums=(0, 1))(x, v, flag) for flag in (True, False))
  chex.assert_trees_all_close(ours, ref, atol=1e-4, rtol=1e-4)
  assert float(jnp.abs(ours[1]).max()) > 1e-2  # not vacuous
  low = layers.channel_sum(x.astype(jnp.bfloat16))
  assert low.dtype == jnp.bfloat16
  np.testing.assert_allclose(low.astype(jnp.float32), x.sum((0, 1, 2)), rtol=0.02, atol=0.05)


@pytest.mark.parametrize("shape", [(16, 64, 64, 64), (3, 7, 7, 5), (8, 25, 25, 4), (1, 4099, 1, 3),
                                   (65536, 8)])
def test_channel_sum_is_as_accurate_as_xlas_reduction(shape):
  """channel_sum of many rows with a large mean (batch norm's E[x^2]) stays
  within a few float32 roundings of the exact sum. One sequential product
  ones @ x had 1e-5 relative error at 65,536 rows (against jnp.sum's 1.4e-7),
  enough to make 8 devices train visibly unlike 1."""
  x = np.random.RandomState(0).randn(*shape).astype(np.float32) + 3
  exact = x.astype(np.float64).reshape(-1, shape[-1]).sum(0)
  rel = lambda s: np.abs(np.asarray(s, np.float64) - exact).max() / np.abs(exact).max()
  axes = tuple(range(x.ndim - 1))
  assert rel(layers.channel_sum(jnp.asarray(x))) < max(8 * rel(jnp.sum(x, axes)), 1e-6)


def test_pix2pix_batch_norm_and_prelu_are_the_plain_forms():
  """pix2pix's batch norm (statistics and gradients through channel_sum) and
  layers.PReLU (the slope's gradient a dot product) are the textbook batch
  norm and nn.PReLU: variables, values and gradients."""
  x = 3.0 + 2.0 * jax.random.normal(jax.random.key(0), (4, 6, 5, 7))
  bn = p2p_nets.BatchNorm()
  variables = bn.init(jax.random.key(1), x)
  variables = jax.tree.map(lambda v: v + 0.3 * jax.random.normal(jax.random.key(2), v.shape),
                           variables)

  def plain(v, x):
    p = v["params"]
    mean, var = x.mean((0, 1, 2), keepdims=True), x.var((0, 1, 2), keepdims=True)
    return (x - mean) / jnp.sqrt(var + 1e-5) * p["scale"][None, None, None] \
        + p["bias"][None, None, None]

  np.testing.assert_allclose(bn.apply(variables, x), plain(variables, x), atol=1e-4)
  weights = jax.random.normal(jax.random.key(3), x.shape)
  grads = [jax.grad(lambda v, x, f=f: jnp.sum(f(v, x) ** 3 * weights), argnums=(0, 1))(
      variables, x) for f in (bn.apply, plain)]
  chex.assert_trees_all_close(grads[0], grads[1], atol=1e-3, rtol=1e-4)

  ours, ref = layers.PReLU(negative_slope_init=0.25), nn.PReLU(negative_slope_init=0.25)
  variables = ours.init(jax.random.key(1), x - 3.0)
  chex.assert_trees_all_equal_shapes_and_dtypes(variables, ref.init(jax.random.key(1), x))
  np.testing.assert_allclose(ours.apply(variables, x - 3.0), ref.apply(variables, x - 3.0))
  grads = [jax.grad(lambda v, x, m=m: jnp.sum(m.apply(v, x) ** 3), argnums=(0, 1))(
      variables, x - 3.0) for m in (ours, ref)]
  chex.assert_trees_all_close(grads[0], grads[1], atol=1e-3, rtol=1e-5)
  assert float(jnp.abs(grads[0][0]["params"]["negative_slope"])) > 1.0  # not vacuous


@pytest.mark.parametrize("dtype", [None, jnp.bfloat16])
def test_batch_norm_is_nn_batch_norm(dtype):
  """layers.BatchNorm is flax's: variables, outputs, gradients, running
  averages, and the running-average mode."""
  x = 2.0 + 3.0 * jax.random.normal(jax.random.key(0), (6, 5, 4, 8))
  kw = dict(momentum=0.9, epsilon=1e-4, dtype=dtype)
  ours, ref = layers.BatchNorm(**kw), nn.BatchNorm(**kw)
  variables = ours.init(jax.random.key(1), x, use_running_average=False)
  chex.assert_trees_all_equal(variables, ref.init(jax.random.key(1), x, use_running_average=False))
  variables = jax.tree.map(lambda v: v + 0.3 * jax.random.normal(jax.random.key(2), v.shape),
                           variables)
  tol = dict(atol=1e-4, rtol=1e-4) if dtype is None else dict(atol=0.05, rtol=0.05)
  weights = jax.random.normal(jax.random.key(3), x.shape)

  def run(m, v, x):
    y, updates = m.apply(v, x, use_running_average=False, mutable=["batch_stats"])
    return jnp.sum(y.astype(jnp.float32) ** 3 * weights), (y, updates)

  results = [jax.value_and_grad(run, argnums=(1, 2), has_aux=True)(m, variables, x)
             for m in (ours, ref)]
  y = [aux[0] for (_, aux), _ in results]
  stats = [aux[1] for (_, aux), _ in results]
  grads = [g for _, g in results]
  assert y[0].dtype == y[1].dtype == (dtype or jnp.float32)
  chex.assert_trees_all_close(y[0].astype(jnp.float32), y[1].astype(jnp.float32), **tol)
  chex.assert_trees_all_close(stats[0], stats[1], atol=1e-5, rtol=1e-5)
  chex.assert_trees_all_close(grads[0], grads[1], **(tol if dtype else dict(atol=1e-2, rtol=1e-4)))
  assert float(jnp.abs(grads[0][0]["params"]["scale"]).max()) > 1.0  # not vacuous
  evaluated = [m.apply(variables, x, use_running_average=True) for m in (ours, ref)]
  chex.assert_trees_all_close(evaluated[0].astype(jnp.float32), evaluated[1].astype(jnp.float32),
                              **tol)
