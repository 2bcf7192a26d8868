"""The benchmark's PyTorch twins are genjax's networks: parameter counts per
network and output shapes agree, so a twin cannot drift from the model it
is compared with. genjax's side is traced with jax.eval_shape (no compute)."""

import math

import jax
import jax.numpy as jnp
import pytest

torch = pytest.importorskip("torch", reason="the twins are PyTorch: pip install -e '.[dev]'")

from benchmarks import benchmark, common, twins
from genjax import models

# experiment -> {twin network: the genjax state's TrainState field}
NETWORKS = {
    "gan": {"generator": "generator", "discriminator": "discriminator"},
    "vae": {"encoder": "encoder", "decoder": "decoder"},
    "cyclegan": {"g_ab": "g_ab", "g_ba": "g_ba", "d_a": "d_a", "d_b": "d_b"},
    "biggan": {"generator": "generator", "discriminator": "discriminator"},
    "pix2pix": {"generator": "generator", "discriminator": "discriminator"},
}
# the benchmark's default experiments, and twins measured on request (with --set items)
TWIN_EXPERIMENTS = [*((e, ()) for e in benchmark.DEFAULT_EXPERIMENTS), ("biggan_folder", ()),
                    ("biggan_folder", ("conditional=True",)), ("pix2pix_edges2fashion", ()),
                    ("pix2pix_edges2fashion", ("model.norm=instance", "model.g_down=4")),
                    ("superres_fashion_mnist", ()), ("inpaint_fashion_mnist", ())]


def _genjax_state(config, shape):
  family = models.get(config.family)
  return jax.eval_shape(lambda k: family.create_state(config, k, shape, 10), jax.random.key(0))


def _count(tree) -> int:
  return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(tree))


def _genjax_output_shape(ts, x_shape, *args, **kwargs):
  """Output shape of a TrainState's network on inputs of x_shape (NHWC for images)."""
  out = jax.eval_shape(lambda v, x: ts.apply_fn(v, x, *args, **kwargs), ts.variables(),
                       jax.ShapeDtypeStruct(x_shape, jnp.float32))
  if isinstance(out, tuple):  # the VAE encoder's (mean, log-variance)
    return (out[0].shape[0], sum(o.shape[-1] for o in out))
  if isinstance(out, dict):  # the VAE decoder's {'logits': [B, H, W, C]}
    return (out["logits"].shape[0], math.prod(out["logits"].shape[1:]))
  return out.shape


def _twin_output_shape(net, x_shape, *args):
  """NHWC-ordered output shape of a twin network on NHWC-shaped inputs."""
  x = torch.zeros(x_shape)
  if x.ndim == 4:
    x = x.permute(0, 3, 1, 2)
  with torch.no_grad():
    out = net.eval()(x, *args)
  return tuple(out.permute(0, 2, 3, 1).shape) if out.ndim == 4 else tuple(out.shape)


@pytest.mark.parametrize("experiment, assignments", TWIN_EXPERIMENTS,
                         ids=[",".join((e, *a)) for e, a in TWIN_EXPERIMENTS])
def test_twin_has_genjax_parameter_counts_and_output_shapes(experiment, assignments):
  config = common.load_config(experiment, assignments)
  shape = common.EXPERIMENTS[experiment.partition(":")[0]]
  state = _genjax_state(config, shape)
  nets = twins.modules(config, shape)
  if config.get("content_network", ""):  # the content loss's frozen trunk: genjax's conv layers
    from genjax.metrics import features
    trunk = nets.pop("content")
    params = features.load(config.content_network).params
    assert sum(p.numel() for p in trunk.parameters()) == _count(
        {k: v for k, v in params.items() if k.startswith("Conv_")})
  assert set(nets) == set(NETWORKS[config.family])
  for name, field in NETWORKS[config.family].items():
    ts = getattr(state, field)
    ours = _count(ts.params)
    theirs = sum(p.numel() for p in nets[name].parameters())
    assert theirs == ours, f"{experiment} {name}: PyTorch {theirs} parameters, genjax {ours}"

  b = 2
  if config.family == "gan":
    z = (b, config.model.latent_dim)
    labels = jnp.zeros((b,), jnp.int32)
    g_shape = _genjax_output_shape(state.generator, z, labels, train=False)
    assert _twin_output_shape(nets["generator"], z) == g_shape == (b, *shape)
    d_shape = _genjax_output_shape(state.discriminator, (b, *shape), labels)
    assert _twin_output_shape(nets["discriminator"], (b, *shape)) == (b, 1)
    assert d_shape == (b,)
  elif config.family == "biggan":
    z, labels = (b, config.model.latent_dim), jnp.arange(b, dtype=jnp.int32)
    g_shape = _genjax_output_shape(state.generator, z, labels, train=False)
    assert _twin_output_shape(nets["generator"], z, torch.arange(b)) == g_shape == (b, *shape)
    d_shape = _genjax_output_shape(state.discriminator, (b, *shape), labels)
    assert _twin_output_shape(nets["discriminator"], (b, *shape), torch.arange(b)) == d_shape
    assert d_shape == (b,)
  elif config.family == "pix2pix":
    x_shape = (b, *shape[:2], shape[-1] + (config.task == "inpaint"))  # + the mask channel
    g_shape = _genjax_output_shape(state.generator, x_shape, rngs={"dropout": jax.random.key(0)})
    assert _twin_output_shape(nets["generator"], x_shape) == g_shape == (b, *shape)
    d_shape = jax.eval_shape(lambda v, x, y: state.discriminator.apply_fn(v, x, y),
                             state.discriminator.variables(),
                             jax.ShapeDtypeStruct(x_shape, jnp.float32),
                             jax.ShapeDtypeStruct((b, *shape), jnp.float32)).shape
    x, y = torch.zeros(b, x_shape[-1], *shape[:2]), torch.zeros(b, shape[-1], *shape[:2])
    with torch.no_grad():
      assert tuple(nets["discriminator"](x, y).shape) == d_shape  # [B, h, w] patch logits
  elif config.family == "vae":
    enc = _genjax_output_shape(state.encoder, (b, *shape))
    assert _twin_output_shape(nets["encoder"], (b, math.prod(shape))) == enc
    dec = _genjax_output_shape(state.decoder, (b, config.model.latent_dim))
    assert _twin_output_shape(nets["decoder"], (b, config.model.latent_dim)) == dec
  else:
    for name in ("g_ab", "d_a"):
      ours = _genjax_output_shape(getattr(state, name), (1, *shape))
      theirs = _twin_output_shape(nets[name], (1, *shape))
      # genjax's patch logits are [B, h, w]; the twin's [B, h, w, 1]
      assert theirs == (ours + (1,) if name == "d_a" else ours), name


@pytest.mark.parametrize("form", ["nchw", "channels_last"])
def test_twin_step_updates_every_network(form):
  """One twin step changes the weights of all four CycleGAN networks (each
  network's optimiser sees its gradients)."""
  config = common.load_config("cyclegan_edges2fashion:tiny")
  step, nets, images_per_step, device = twins.make_step(
      config, (28, 28, 1), form, num_images=32)
  before = {k: [p.detach().clone() for p in net.parameters()] for k, net in nets.items()}
  step()
  for name, net in nets.items():
    moved = [not torch.equal(a, p) for a, p in zip(before[name], net.parameters())]
    assert all(moved), f"{name}: {moved.count(False)} of {len(moved)} tensors unchanged"
  assert images_per_step == config.batch_size and device.type in ("cpu", "cuda")


@pytest.mark.parametrize("experiment", ["gan_mnist:tiny", "gan_mnist:wgan_gp,tiny",
                                        "vae_mnist:tiny", "vae_mnist:burda_iwae5,tiny"])
def test_each_twin_step_updates_every_network(experiment):
  """One step of the DCGAN (non-saturating and WGAN-GP's double backward)
  and VAE (ELBO and IWAE-5) twins changes every weight tensor."""
  config = common.load_config(experiment)
  step, nets, images_per_step, _ = twins.make_step(config, (28, 28, 1), "nchw",
                                                               num_images=64)
  before = {k: [p.detach().clone() for p in net.parameters()] for k, net in nets.items()}
  step()
  for name, net in nets.items():
    moved = [not torch.equal(a, p) for a, p in zip(before[name], net.parameters())]
    if "wgan_gp" in experiment and name == "discriminator":
      assert not moved[-1]  # the output bias cancels in E[D(fake)] - E[D(real)]: no gradient
      moved = moved[:-1]
    assert all(moved), f"{experiment} {name}: {moved.count(False)} of {len(moved)} unchanged"
    assert all(p.requires_grad for p in net.parameters())  # restored after G's update
  assert images_per_step == config.batch_size * config.get("n_critic", 1)


@pytest.mark.parametrize("experiment, form", [("biggan_folder:tiny", "nchw"),
                                              ("biggan_folder:tiny", "channels_last"),
                                              ("pix2pix_edges2fashion:tiny", "channels_last"),
                                              ("superres_fashion_mnist:tiny", "channels_last"),
                                              ("inpaint_fashion_mnist:tiny", "nchw")])
def test_biggan_and_pix2pix_twin_steps_update_every_weight(experiment, form):
  """One step of the conditional BigGAN twin (2 D steps, orthogonal
  regularisation, hinge loss) moves every weight of G and D, the shared
  embedding and the projection included; one of the pix2pix twin, every
  weight of the U-Net and the PatchGAN."""
  config = common.load_config(experiment, ("conditional=True", "d_steps=2")
                              if experiment.startswith("biggan") else ())
  shape = (32, 32, 3) if config.family == "biggan" else (32, 32, 1)
  step, nets, images_per_step, _ = twins.make_step(config, shape, form, num_images=32)
  trunk = nets.pop("content", None)
  if config.get("content_network", ""):
    assert trunk is not None and not any(p.requires_grad for p in trunk.parameters())
  before = {k: {n: p.detach().clone() for n, p in net.named_parameters()}
            for k, net in nets.items()}
  loss = step()
  assert torch.isfinite(loss)
  for name, net in nets.items():
    assert getattr(net, "num_classes", 10) == 10
    unchanged = [n for n, p in net.named_parameters() if torch.equal(before[name][n], p)]
    assert not unchanged, f"{name}: {unchanged}"
    assert all(p.requires_grad for p in net.parameters()) and net.training
  assert images_per_step == config.batch_size * config.get("d_steps", 1)


def test_biggan_twin_orthogonal_regularisation_is_genjax_gradient():
  """The twin's update of a conv weight [F, C, k, k] is the gradient of
  genjax's penalty at the same kernel [k, k, C, F]."""
  from genjax.models.biggan import step as biggan

  kernel = jax.random.normal(jax.random.key(0), (3, 3, 4, 6))
  ours = jax.grad(biggan.ortho_penalty)({"conv": {"kernel": kernel}})["conv"]["kernel"]
  weight = torch.tensor(jax.device_get(kernel)).permute(3, 2, 0, 1)
  theirs = twins.ortho_grad(weight).permute(2, 3, 1, 0)
  assert torch.allclose(theirs, torch.tensor(jax.device_get(ours)), rtol=1e-4, atol=1e-4)
  assert float(jnp.abs(ours).max()) > 1.0  # not a vanishing comparison


def test_twins_refuse_options_they_do_not_train():
  for experiment, key, value in [("gan_mnist", "ema_decay", 0.999), ("gan_mnist", "r1_gamma", 1.0),
                                 ("vae_mnist", "beta", 4.0),
                                 ("biggan_folder:tiny", "augment", "diffaugment")]:
    config = common.load_config(experiment)
    config[key] = value
    shape = (32, 32, 3) if config.family == "biggan" else (28, 28, 1)
    with pytest.raises(ValueError, match="twin"):
      twins.make_step(config, shape, "nchw", num_images=8)
  with pytest.raises(ValueError, match=r"BigGAN twin makes square images.*\(28, 28, 1\)"):
    twins.make_step(common.load_config("biggan_folder:tiny"), (28, 28, 1), "nchw", num_images=8)


def test_forms_that_do_not_apply_and_families_without_a_twin_are_named():
  with pytest.raises(ValueError, match="'channels_last' does not apply to the vae twin"):
    twins.make_step(common.load_config("vae_mnist"), (28, 28, 1),
                                "channels_last", num_images=8)
  config = common.load_config("gan_mnist")
  config.family = "diffusion"
  with pytest.raises(ValueError, match="No PyTorch twin of family 'diffusion'"):
    twins.make_step(config, (28, 28, 1), "nchw", num_images=8)


def test_every_genjax_family_has_a_twin():
  assert set(twins.TWINS) == set(models.FAMILIES)


def test_progan_twin_has_genjax_parameter_counts_and_output_shapes():
  """Every level's weights, and the final level's images and scores (32x32:
  28x28 images padded)."""
  from experiments import progan_fashion_mnist

  config = progan_fashion_mnist.get_config()
  shape = (28, 28, 1)
  state = _genjax_state(config, shape)
  nets = twins.modules(config, shape)
  assert set(nets) == {"generator", "discriminator"}
  for name in nets:
    ours = _count(getattr(state, name).params)
    theirs = sum(p.numel() for p in nets[name].parameters())
    assert theirs == ours, f"progan {name}: PyTorch {theirs} parameters, genjax {ours}"
  level, b = nets["generator"].levels - 1, config.model.mbstd_group
  z = (b, config.model.latent_dim)
  g_shape = _genjax_output_shape(state.generator, z, level, 1.0)
  with torch.no_grad():
    images = nets["generator"](torch.zeros(z), level, 1.0)
    scores = nets["discriminator"](images, level, 1.0)
  assert tuple(images.permute(0, 2, 3, 1).shape) == g_shape == (b, 32, 32, 1)
  assert tuple(scores.shape) == _genjax_output_shape(state.discriminator, g_shape, level,
                                                     1.0) == (b,)


def test_progan_twin_step_updates_the_final_phase_networks():
  """One step at the final level, faded in: every weight the phase uses
  moves; the lower levels' to_rgb and from_rgb do not (alpha = 1)."""
  from experiments import progan_fashion_mnist

  config = progan_fashion_mnist.get_config("tiny")
  step, nets, images_per_step, _ = twins.make_step(config, (28, 28, 1), "nchw", num_images=64)
  last = nets["generator"].levels - 1
  before = {k: {n: p.detach().clone() for n, p in net.named_parameters()}
            for k, net in nets.items()}
  step()
  for name, net in nets.items():
    for n, p in net.named_parameters():
      in_phase = not n.startswith(("to_rgb.", "from_rgb.")) or n.split(".")[1] == str(last)
      assert (not torch.equal(before[name][n], p)) == in_phase, f"{name} {n}"
  assert images_per_step == config.batch_size
  with pytest.raises(ValueError, match="'compile' does not apply to the progan twin"):
    twins.make_step(config, (28, 28, 1), "compile", num_images=8)


@pytest.mark.parametrize("experiment, form", [("gan_mnist:wgan_gp,tiny", "channels_last"),
                                              ("vae_mnist:tiny", "nchw"),
                                              ("cyclegan_edges2fashion:tiny", "channels_last"),
                                              ("biggan_folder:tiny", "channels_last")])
def test_twin_in_bfloat16_autocast_computes_in_bfloat16_and_trains(experiment, form):
  """Under bfloat16 autocast the networks' layers compute in bfloat16, the
  weights stay float32 and move, and the step's loss is finite."""
  config = common.load_config(experiment)
  shape = (32, 32, 3) if config.family == "biggan" else (28, 28, 1)
  step, nets, _, _ = twins.make_step(config, shape, form, num_images=32, precision="bfloat16")
  dtypes = []
  layer = next(m for net in nets.values() for m in net.modules()
               if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))
  layer.register_forward_hook(lambda m, args, out: dtypes.append(out.dtype))
  before = [p.detach().clone() for p in layer.parameters()]
  losses = [step() for _ in range(2)]
  assert all(torch.isfinite(loss) and loss.dtype == torch.float32 for loss in losses), losses
  assert dtypes and set(dtypes) == {torch.bfloat16}
  assert all(p.dtype == torch.float32 and not torch.equal(a, p)
             for a, p in zip(before, layer.parameters()))


def test_gpu_only_form_and_unknown_precision_are_refused_by_name():
  config = common.load_config("gan_mnist:tiny")
  with pytest.raises(ValueError, match="'reduce_overhead'.*GPU only.*'compile'"):
    twins.make_step(config, (28, 28, 1), "reduce_overhead", num_images=8, device="cpu")
  with pytest.raises(ValueError, match="Precision 'float16'.*'bfloat16'"):
    twins.make_step(config, (28, 28, 1), "nchw", num_images=8, precision="float16")
  assert twins.unavailable("reduce_overhead", "cuda") is None
  assert twins.unavailable("compile_channels_last", "cpu") is None
