"""VAE evaluations: grids and test ELBO during training; ELBO and IWAE-k
negative log-likelihoods in nats for `genjax.evaluate` (Burda et al. 2016)."""

import functools
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from genjax import images as images_lib
from genjax import viz
from genjax.models.vae import step as vae


@functools.partial(jax.jit, static_argnames=("num_samples", "chunk"))
def _iwae_bound(state: vae.VAEState, x: jax.Array, key: jax.Array, num_samples: int,
                chunk: int) -> jax.Array:
  """log (1/k) sum_i w_i [B] for k = num_samples, drawn `chunk` at a time in
  one compiled loop with a running logsumexp (max and scaled sum, float32)."""
  mean, logvar = vae.posterior(state.encoder.params, state, x)  # [B, Z]

  def log_w(i, n):  # [n, B]
    eps = vae.normal(jax.random.fold_in(key, i), (n, *mean.shape))
    log_px_z, log_pz_qz = vae.log_weight_terms(state.decoder.params, state, x, mean, logvar, eps)
    return log_px_z + log_pz_qz

  def add(carry, w):
    top, total = carry
    new_top = jnp.maximum(top, jnp.max(w, axis=0))
    shift = jnp.where(jnp.isneginf(new_top), 0.0, new_top)  # every weight so far 0: no NaN
    return new_top, total * jnp.exp(top - shift) + jnp.sum(jnp.exp(w - shift[None]), axis=0)

  full, rest = divmod(num_samples, chunk)
  carry = (jnp.full(mean.shape[:1], -jnp.inf), jnp.zeros(mean.shape[:1]))
  carry, _ = jax.lax.scan(lambda c, i: (add(c, log_w(i, chunk)), None), carry, jnp.arange(full))
  if rest:
    carry = add(carry, log_w(full, rest))
  top, total = carry
  return top + jnp.log(total) - jnp.log(float(num_samples))


def iwae_log_likelihood(state: vae.VAEState, x: jax.Array, key: jax.Array, k: int,
                        chunk: int = 25) -> np.ndarray:
  """The IWAE-k lower bound on log p(x) per example [B] (Burda et al. 2016).

  One compiled call draws the k samples `chunk` at a time (memory O(chunk *
  B * D) whatever k is) and combines them with a running logsumexp.
  """
  return np.asarray(_iwae_bound(state, x, key, k, min(chunk, k)), np.float64)


def count_active_units(means: np.ndarray, threshold: float = 0.01) -> int:
  """Latent units whose posterior mean varies across data, Cov_x(E_q[z_u]) >
  threshold (Burda et al. 2016), from posterior means [N, Z]."""
  return int(np.sum(np.var(np.asarray(means), axis=0) > threshold))


def active_units(state: vae.VAEState, x: jax.Array, threshold: float = 0.01) -> int:
  """Active units of the encoder on targets x [N, H, W, C]."""
  return count_active_units(vae.encode_mean(state, x), threshold)


def test_targets(test_data, likelihood: str, key: jax.Array) -> jax.Array:
  """The test split as decoder targets, binarised/dequantised once with `key`."""
  return vae.targets(jnp.asarray(images_lib.to_float(test_data.images)), key, likelihood)


def iwae_nll(state: vae.VAEState, x: jax.Array, key: jax.Array, k: int, chunk: int = 25,
             batch: int = 100, progress=None) -> float:
  """The IWAE-k negative log-likelihood in nats, -mean log p(x) bound, of
  targets x [N, H, W, C], `batch` images per compiled call."""
  bounds = []
  for i in range(0, x.shape[0], batch):
    bounds.append(iwae_log_likelihood(state, x[i:i + batch], jax.random.fold_in(key, i), k, chunk))
    if progress is not None:
      progress(min(i + batch, x.shape[0]))
  return float(-np.mean(np.concatenate(bounds)))


def make_evaluator(config: ml_collections.ConfigDict, key: jax.Array, test_data):
  """state -> (grids, {'test_elbo', 'active_units'}) on the test split.

  Grids: reconstructions (rows of inputs over rows of outputs), samples,
  interpolations between pairs of test images, and for a 2-D latent space
  the test set's posterior means coloured by class and the decoded manifold.
  At the last step (config.num_steps), with config.final_iwae_k = k > 0, the
  scalars add `iwae_<k>_nll_nats` over the whole test split.
  """
  # split(key, 4)'s first three are split(key, 3)'s (partitionable threefry):
  # the fourth, for the final IWAE, is apart from them and their fold_ins.
  target_key, elbo_key, sample_key, iwae_key = jax.random.split(key, 4)
  final_k = config.final_iwae_k
  x = test_targets(test_data, config.model.likelihood, target_key)  # [N, H, W, C]
  n_show = min(32, x.shape[0] // 2)
  shown = x[:n_show]
  n_pairs = min(8, (x.shape[0] - n_show) // 2)  # a small test split has fewer
  pairs = (x[n_show:n_show + n_pairs], x[n_show + n_pairs:n_show + 2 * n_pairs])
  elbo_fn = jax.jit(lambda s, xb: vae.elbo(s, xb, elbo_key))
  mean_fn = jax.jit(vae.encode_mean)
  decode_fn = jax.jit(vae.decode)
  sample_fn = jax.jit(lambda s: vae.sample(s, sample_key, config.num_eval_samples, config))
  to_grid = lambda images, **kw: viz.grid(images_lib.to_uint8(images), **kw)

  def evaluate(state):
    grids = {"samples": to_grid(sample_fn(state))}
    if n_show:  # a test split of one image has none to show beside the pairs
      recon = decode_fn(state, mean_fn(state, shown))
      rows = [np.concatenate([shown[i:i + 8] * 2 - 1, recon[i:i + 8]])
              for i in range(0, n_show, 8)]
      grids["reconstructions"] = to_grid(np.concatenate(rows), ncol=8)
    if n_pairs:
      za, zb = mean_fn(state, pairs[0]), mean_fn(state, pairs[1])
      t = np.linspace(0.0, 1.0, 10)[:, None, None]
      z_line = (za[None] * (1 - t) + zb[None] * t).transpose(1, 0, 2).reshape(-1, za.shape[-1])
      grids["interpolations"] = to_grid(decode_fn(state, z_line), ncol=10)
    means = np.concatenate([mean_fn(state, x[i:i + 1000]) for i in range(0, x.shape[0], 1000)])
    if config.model.latent_dim == 2:
      grids["latent_scatter"] = viz.scatter(means, test_data.labels)
      q = jax.scipy.special.ndtri(np.linspace(0.05, 0.95, 15))
      grid_z = np.stack(np.meshgrid(q, q[::-1]), -1).reshape(-1, 2)
      grids["manifold"] = to_grid(decode_fn(state, grid_z), ncol=15, pad=0)
    elbos = np.concatenate([elbo_fn(state, x[i:i + 1000]) for i in range(0, x.shape[0], 1000)])
    scalars = {"test_elbo": float(np.mean(elbos)), "active_units": float(count_active_units(means))}
    if final_k and int(state.step) >= config.num_steps:
      scalars[f"iwae_{final_k}_nll_nats"] = iwae_nll(state, x, iwae_key, final_k)
    return grids, scalars

  return evaluate


def evaluate_metrics(state: vae.VAEState, config: ml_collections.ConfigDict, test_data,
                     key: jax.Array, *, iwae_k: int = 5000, chunk: int = 25, batch: int = 100,
                     progress=None) -> dict:
  """Test ELBO, active units and (when iwae_k > 0) the IWAE-k NLL in nats over
  the whole `test_data`."""
  target_key, elbo_key, iwae_key = jax.random.split(key, 3)
  x = test_targets(test_data, config.model.likelihood, target_key)
  elbo_fn = jax.jit(lambda s, xb, k: vae.elbo(s, xb, k))
  elbos = [np.asarray(elbo_fn(state, x[i:i + batch], jax.random.fold_in(elbo_key, i)))
           for i in range(0, x.shape[0], batch)]
  result = {"test_elbo_nats": float(np.mean(np.concatenate(elbos)))}
  if iwae_k:
    start = time.perf_counter()
    result.update({f"iwae_{iwae_k}_nll_nats": iwae_nll(state, x, iwae_key, iwae_k, chunk, batch,
                                                        progress),
                   "iwae_k": iwae_k, "iwae_seconds": round(time.perf_counter() - start, 1)})
  elif progress is not None:
    progress(x.shape[0])
  return {**result, "num_test_images": int(x.shape[0]),
          "active_units": active_units(state, x[:5000]),
          "likelihood": config.model.likelihood}
