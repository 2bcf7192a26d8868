"""PyTorch twins of genjax's train steps: the yardstick of `python -m benchmarks.benchmark`.

A twin is built from the same genjax config as the step it is compared with:
the same networks (layer by layer, the same parameter counts; tests/
test_benchmark_twins.py checks them against genjax's modules), batch, loss,
optimiser and per-step work, written as the usual PyTorch training loop
writes it, with real batches gathered from uint8 images held in memory.

  gan       DCGAN generator (dense to a start x start map, sub-pixel
            upsamplings by a 3x3 conv and pixel shuffle, batch norm, ReLU,
            a conv to C channels, tanh) and discriminator (stride-2 4x4
            convs, leaky ReLU 0.2, a dense logit); the non-saturating loss
            with Adam, or with `loss=wgan_gp` WGAN-GP: n_critic critic
            updates on fresh batches, each with its gradient penalty
            (double backward), then the generator's loss through the updated
            critic on the last fakes, as genjax's step.
  vae       MLP encoder and decoder (tanh), dynamically binarised digits,
            one reparameterised sample and the analytic KL, or with
            iwae_k_train = k the IWAE-k bound; Bernoulli likelihood from
            logits; Adam.
  cyclegan  ResNet generators (reflection padding, instance norm without
            affine parameters, stride-2 downsamplings, residual blocks, the
            config's upsampling), PatchGAN discriminators; least squares,
            cycle and identity L1 losses, both generators updated together,
            the authors' image pool, then both discriminators.
  progan    the progressive GAN at its last phase (the final resolution,
            faded in): equalised learning rate, pixel norm, minibatch
            stddev, the fade-in blend; real images padded with -1 to the
            final size, WGAN-GP with the drift term, Adam, the generator's
            loss through the updated discriminator, the EMA of its weights.
  biggan    BigGAN's residual G and D with self-attention at
            `model.attention`, spectral norm on every weight (one power
            iteration per training-mode call), with `conditional`
            class-conditional batch norm from a shared embedding,
            hierarchical latents and a projection D; the hinge loss,
            `d_steps` D updates on fresh batches and fakes, then G's loss
            through the updated D (its power iteration left as it is) on the
            last fakes, BigGAN's off-diagonal orthogonal regularisation of
            G's weights, Adam(b1, b2) with the two learning rates, G's EMA.
  pix2pix   the U-Net generator (skips to the mirror encoder layer, dropout
            as its noise, active in training) and the PatchGAN on (input,
            output) pairs, batch norm by the batch's statistics; D's loss
            (BCE(D(x, y), 1) + BCE(D(x, G(x)), 0)) / 2, then G's through the
            updated D, adv_weight BCE(D(x, G(x)), 1) + l1_weight |G(x) - y|_1,
            on aligned pairs drawn at the same indices; Adam(lr, b1, b2), in
            the schedule's constant phase. task=superres: the inputs made
            per batch from the targets (average pooling by data.scale,
            bicubic upsampling), SRResNet where model.generator says so, and
            content_weight x the MSE of a frozen conv trunk's features of
            G(x) and y; task=inpaint: centre holes filled with the known
            pixels' mean and the mask as a channel, G's output composited
            with the known pixels, the L1 over the hole plus known_weight x
            that over the known pixels.

TWINS is the one registry, by family name: each twin's networks
(benchmarks/twin_networks.py), train step and forms. A twin runs in one of
the forms of FORMS, a memory layout and a way of running the networks; the
benchmark times every form that applies, each in its own process, and
compares genjax with the fastest ("PyTorch's best form"):

  nchw                   eager, PyTorch's default memory layout
  channels_last          eager, NHWC memory format (convolutional twins)
  compile                torch.compile (inductor, mode 'default') of each network
  compile_channels_last  the same, NHWC
  reduce_overhead        torch.compile(mode='reduce-overhead'): inductor and
                         CUDA graphs, NHWC for convolutional twins; GPU only
                         (on the CPU make_step refuses it, naming 'compile')

and in one of two precisions: float32, or bfloat16 under
torch.autocast(bfloat16) around each forward pass and loss (weights,
gradients and Adam's state stay float32; no loss scaling, which bfloat16's
float32 range does not need), on the CPU and on CUDA alike: the twin of
genjax's `config.precision=bfloat16`.

On a machine with a CUDA GPU the twin runs there (synchronising after each
step), else on the CPU with PyTorch's default threads. Needs torch (in the
`dev` and `bench` extras); genjax itself never imports it.
"""

import contextlib
import copy
import math
import os
import random
from typing import Callable, NamedTuple

from benchmarks import twin_networks
from benchmarks.common import peak_rss_mb, timed_windows

class Form(NamedTuple):
  """How a twin runs: its networks' memory layout and torch.compile mode."""

  channels_last: bool
  compile_mode: str | None  # None: eager
  gpu_only: bool = False


FORMS = {
    "nchw": Form(False, None),
    "channels_last": Form(True, None),
    "compile": Form(False, "default"),
    "compile_channels_last": Form(True, "default"),
    "reduce_overhead": Form(True, "reduce-overhead", gpu_only=True),
}
CONV_FORMS = tuple(FORMS)
DENSE_FORMS = ("nchw", "compile", "reduce_overhead")  # no memory format for an MLP
PRECISIONS = ("float32", "bfloat16")


# --- train steps ----------------------------------------------------------


def _gan_step(nets, config, images, device, torch, to_form, amp):
  g, d = nets["generator"], nets["discriminator"]
  b, o, latent = config.batch_size, config.opt, config.model.latent_dim
  opt_g = torch.optim.Adam(g.parameters(), lr=o.g_lr, betas=(o.b1, o.b2))
  opt_d = torch.optim.Adam(d.parameters(), lr=o.d_lr, betas=(o.b1, o.b2))
  bce = torch.nn.functional.binary_cross_entropy_with_logits
  ones, zeros = torch.ones(b, device=device), torch.zeros(b, device=device)
  wgan_gp = config.loss == "wgan_gp"
  if config.loss not in ("non_saturating", "wgan_gp"):
    raise ValueError(f"The PyTorch GAN twin has the non_saturating and wgan_gp losses, "
                     f"not {config.loss!r}.")
  extras = {k: config.get(k, 0.0) for k in ("r1_gamma", "clip_value", "ema_decay")}
  if o.get("name", "adam") != "adam" or any(extras.values()):
    raise ValueError(f"The PyTorch GAN twin trains with Adam and no R1, clipping or EMA; "
                     f"got opt.name={o.get('name', 'adam')!r}, {extras}.")

  def real_batch():
    idx = torch.randint(0, images.shape[0], (b,), device=device)
    return to_form(images[idx].float() / 127.5 - 1.0)

  def d_update(real, fake):
    with amp():
      logits = d(torch.cat([real, fake]))[:, 0].float()
      if wgan_gp:
        eps = torch.rand(b, 1, 1, 1, device=device)
        x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
        (grad,) = torch.autograd.grad(d(x_hat).sum(), x_hat, create_graph=True)
        gp = ((grad.float().flatten(1).pow(2).sum(1) + 1e-12).sqrt() - 1).pow(2).mean()
        loss = logits[b:].mean() - logits[:b].mean() + config.gp_weight * gp
      else:
        loss = bce(logits[:b], ones) + bce(logits[b:], zeros)
    opt_d.zero_grad(set_to_none=True)
    loss.backward()
    opt_d.step()

  def step():
    for _ in range(config.n_critic - 1):
      with torch.no_grad(), amp():
        fake = g(torch.randn(b, latent, device=device))
      d_update(real_batch(), fake)
    with amp():
      fake = g(torch.randn(b, latent, device=device))
    d_update(real_batch(), fake.detach())
    d.requires_grad_(False)  # G's loss differentiates G alone, as genjax's step
    with amp():
      logits = d(fake)[:, 0].float()
      g_loss = -logits.mean() if wgan_gp else bce(logits, ones)
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_g.step()
    d.requires_grad_(True)
    return g_loss.detach()

  return step, b * config.n_critic


def _vae_step(nets, config, images, device, torch, to_form, amp):
  del to_form
  enc, dec = nets["encoder"], nets["decoder"]
  b, k, o = config.batch_size, config.get("iwae_k_train", 0), config.opt
  opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=o.lr, betas=(o.b1, o.b2),
                         eps=o.eps)
  bce = torch.nn.functional.binary_cross_entropy_with_logits
  flat = images.reshape(images.shape[0], -1)
  if config.get("beta", 1.0) != 1.0 or config.get("kl_warmup_steps", 0):
    raise ValueError("The PyTorch VAE twin trains the plain ELBO (beta 1, no KL warm-up).")
  if o.get("variant", ""):
    raise ValueError(f"The PyTorch VAE twin trains with torch's Adam, not "
                     f"opt.variant={o.variant!r}.")

  def step():
    idx = torch.randint(0, flat.shape[0], (b,), device=device)
    x = torch.bernoulli(flat[idx].float() / 255.0)
    with amp():  # the networks in the autocast dtype, the bound in float32
      mean, logvar = enc(x).float().chunk(2, dim=1)
      std = torch.exp(0.5 * logvar)
      if k == 0:  # the ELBO with the analytic KL
        z = mean + std * torch.randn_like(mean)
        log_px_z = -bce(dec(z).float(), x, reduction="none").sum(1)
        kl = 0.5 * (logvar.exp() + mean**2 - 1.0 - logvar).sum(1)
        loss = -(log_px_z - kl).mean()
      else:  # the IWAE-k bound, log mean_k p(x, z_k) / q(z_k | x) (k = 1: sampled KL)
        eps = torch.randn(k, *mean.shape, device=device)
        z = mean + std * eps
        log_px_z = -bce(dec(z).float(), x.expand(k, -1, -1), reduction="none").sum(-1)
        log_pz = -0.5 * (z**2).sum(-1)
        log_qz = -0.5 * (eps**2).sum(-1) - (0.5 * logvar).sum(-1)
        loss = -(torch.logsumexp(log_px_z + log_pz - log_qz, 0) - math.log(k)).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach()

  return step, b


def _cyclegan_step(nets, config, images, device, torch, to_form, amp):
  g_ab, g_ba, d_a, d_b = nets["g_ab"], nets["g_ba"], nets["d_a"], nets["d_b"]
  b, o = config.batch_size, config.opt
  adam = dict(lr=o.lr, betas=(o.b1, o.b2))
  opt_g = torch.optim.Adam([*g_ab.parameters(), *g_ba.parameters()], **adam)
  opt_d = torch.optim.Adam([*d_a.parameters(), *d_b.parameters()], **adam)
  lam, idt = config.cycle_weight, config.identity_weight
  pools = ([], [])

  def query(pool, fakes):  # the authors' ImagePool.query
    if config.pool_size == 0:
      return fakes
    out = []
    for image in fakes:
      image = image[None]
      if len(pool) < config.pool_size:
        pool.append(image)
        out.append(image)
      elif random.random() > 0.5:
        i = random.randrange(config.pool_size)
        out.append(pool[i].clone())
        pool[i] = image
      else:
        out.append(image)
    return torch.cat(out)

  def batch(half):
    idx = torch.randint(0, images.shape[1], (b,), device=device)
    return to_form(images[half][idx].float() / 127.5 - 1.0)

  def mse_to(x, target):
    return (x.float() - target).pow(2).mean()

  def step():
    real_a, real_b = batch(0), batch(1)
    with amp():
      fake_b, fake_a = g_ab(real_a), g_ba(real_b)
      loss = (mse_to(d_b(fake_b), 1.0) + mse_to(d_a(fake_a), 1.0)
              + lam * ((g_ba(fake_b) - real_a).abs().mean()
                       + (g_ab(fake_a) - real_b).abs().mean()))
      if idt:
        loss = loss + idt * lam * ((g_ab(real_b) - real_b).abs().mean()
                                   + (g_ba(real_a) - real_a).abs().mean())
    d_a.requires_grad_(False)
    d_b.requires_grad_(False)
    opt_g.zero_grad(set_to_none=True)
    loss.backward()
    opt_g.step()
    d_a.requires_grad_(True)
    d_b.requires_grad_(True)
    pooled_a, pooled_b = query(pools[0], fake_a.detach()), query(pools[1], fake_b.detach())
    with amp():
      d_loss = 0.5 * (mse_to(d_a(real_a), 1.0) + mse_to(d_a(pooled_a), 0.0)
                      + mse_to(d_b(real_b), 1.0) + mse_to(d_b(pooled_b), 0.0))
    opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    opt_d.step()
    return loss.detach()

  return step, b


def _progan_step(nets, config, images, device, torch, to_form, amp):
  g, d = nets["generator"], nets["discriminator"]
  level, alpha, b = g.levels - 1, 1.0, config.batch_size  # the last phase, faded in
  o = config.opt
  opt_g = torch.optim.Adam(g.parameters(), lr=o.g_lr, betas=(o.b1, o.b2), eps=o.eps)
  opt_d = torch.optim.Adam(d.parameters(), lr=o.d_lr, betas=(o.b1, o.b2), eps=o.eps)
  ema = copy.deepcopy(g).requires_grad_(False)
  pad = 4 * 2**level - images.shape[-1]  # to the final size, as genjax's pad_to
  padding = (pad // 2, pad - pad // 2) * 2

  def step():
    idx = torch.randint(0, images.shape[0], (b,), device=device)
    real = torch.nn.functional.pad(to_form(images[idx].float() / 127.5 - 1.0), padding,
                                   value=-1.0)
    with amp():
      fake = g(torch.randn(b, config.model.latent_dim, device=device), level, alpha)
      scores = d(torch.cat([real, fake.detach()]), level, alpha).float()
      real_scores, fake_scores = scores[:b], scores[b:]
      eps = torch.rand(b, 1, 1, 1, device=device)
      x_hat = (eps * real + (1 - eps) * fake.detach()).requires_grad_(True)
      (grad,) = torch.autograd.grad(d(x_hat, level, alpha).sum(), x_hat, create_graph=True)
      gp = ((grad.float().flatten(1).pow(2).sum(1) + 1e-12).sqrt() - 1).pow(2).mean()
      d_loss = (fake_scores.mean() - real_scores.mean() + config.gp_weight * gp
                + config.drift * real_scores.pow(2).mean())
    opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    opt_d.step()
    with amp():
      g_loss = -d(fake, level, alpha).float().mean()
    opt_g.zero_grad(set_to_none=True)
    d.requires_grad_(False)  # G's loss differentiates G alone, as genjax's step
    g_loss.backward()
    d.requires_grad_(True)
    opt_g.step()
    with torch.no_grad():
      for e, p in zip(ema.parameters(), g.parameters()):
        e.lerp_(p, 1.0 - config.ema_decay)
    return g_loss.detach()

  return step, b


def ortho_grad(weight):
  """BigGAN-PyTorch's `ortho` update of a weight [F, ...] (one row per
  output): 2 (W W^T * (1 - I)) W, the gradient of ||W W^T * (1 - I)||_F^2 / 2
  (genjax.models.biggan.step.ortho_penalty)."""
  w = weight.flatten(1)
  gram = w @ w.T
  gram.fill_diagonal_(0.0)
  return (2.0 * gram @ w).view_as(weight)


def _biggan_step(nets, config, images, device, torch, to_form, amp):
  g, d = nets["generator"], nets["discriminator"]
  b, o, latent = config.batch_size, config.opt, config.model.latent_dim
  classes = g.num_classes
  if config.augment != "none":
    raise ValueError(f"The PyTorch BigGAN twin trains without augmentation, not "
                     f"augment={config.augment!r}.")
  opt_g = torch.optim.Adam(g.parameters(), lr=o.g_lr, betas=(o.b1, o.b2))
  opt_d = torch.optim.Adam(d.parameters(), lr=o.d_lr, betas=(o.b1, o.b2))
  plain_g = getattr(g, "_orig_mod", g)  # under torch.compile, the module it wraps
  ema = copy.deepcopy(plain_g).requires_grad_(False)
  relu = torch.nn.functional.relu
  # BigGAN-PyTorch's `ortho`: every weight of G but the shared class embedding
  # (the spectral norm's unnormalised weights, as genjax's kernels)
  ortho = [p for n, p in plain_g.named_parameters()
           if p.ndim >= 2 and not n.startswith("shared.")]

  def labels():
    if not classes:
      return None
    return torch.randint(0, classes, (b,), device=device)

  def real_batch():
    idx = torch.randint(0, images.shape[0], (b,), device=device)
    return to_form(images[idx].float() / 127.5 - 1.0)

  def d_update(real, fake, fake_labels):
    real_labels = labels()
    with amp():
      both = None if not classes else torch.cat([real_labels, fake_labels])
      logits = d(torch.cat([real, fake]), both).float()
      loss = relu(1.0 - logits[:b]).mean() + relu(1.0 + logits[b:]).mean()  # hinge
    opt_d.zero_grad(set_to_none=True)
    loss.backward()
    opt_d.step()

  def step():
    for _ in range(config.d_steps - 1):
      fake_labels = labels()
      with torch.no_grad(), amp():
        fake = g(torch.randn(b, latent, device=device), fake_labels)
      d_update(real_batch(), fake, fake_labels)
    fake_labels = labels()
    with amp():
      fake = g(torch.randn(b, latent, device=device), fake_labels)
    d_update(real_batch(), fake.detach(), fake_labels)
    d.requires_grad_(False)  # G's loss differentiates G alone, as genjax's step
    d.eval()  # and leaves D's power iteration where it is
    with amp():
      g_loss = -d(fake, fake_labels).float().mean()
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    d.requires_grad_(True)
    d.train()
    if config.ortho_weight:
      with torch.no_grad():
        for p in ortho:
          p.grad.add_(ortho_grad(p), alpha=config.ortho_weight)
    opt_g.step()
    with torch.no_grad():
      for e, p in zip(ema.parameters(), plain_g.parameters()):
        e.lerp_(p, 1.0 - config.ema_decay)
    return g_loss.detach()

  return step, b * config.d_steps


def _pix2pix_inputs(config, torch):
  """(inputs of targets y, G's images from its raw outputs) for config.task,
  made per batch as genjax.nn.degrade makes them in the compiled step."""
  f = torch.nn.functional
  if config.task == "superres":
    s = config.data.scale

    def inputs(y):
      low = f.avg_pool2d(y, s)
      return f.interpolate(low, scale_factor=s, mode="bicubic", align_corners=False).clamp(-1, 1)
    return inputs, lambda raw, x: raw
  if config.task == "inpaint":
    if config.data.mask != "centre":
      raise ValueError(f"The PyTorch pix2pix twin makes centre holes, not data.mask="
                       f"{config.data.mask!r}.")

    def inputs(y):
      size, side = y.shape[-1], y.shape[-1] // 2
      lo = (size - side) // 2
      hole = torch.zeros_like(y[:, :1])
      hole[..., lo:lo + side, lo:lo + side] = 1.0
      known = 1.0 - hole
      mean = (y * known).sum((2, 3), keepdim=True) / known.sum((2, 3), keepdim=True).clamp(min=1)
      return torch.cat([torch.where(hole > 0.5, mean, y), hole * 2 - 1], 1)
    return inputs, lambda raw, x: torch.where(x[:, -1:] > 0, raw, x[:, :-1])
  return None, lambda raw, x: raw


def _pix2pix_step(nets, config, images, device, torch, to_form, amp):
  g, d = nets["generator"], nets["discriminator"]
  b, o = config.batch_size, config.opt
  opt_g = torch.optim.Adam(g.parameters(), lr=o.lr, betas=(o.b1, o.b2))
  opt_d = torch.optim.Adam(d.parameters(), lr=o.lr, betas=(o.b1, o.b2))
  bce = torch.nn.functional.binary_cross_entropy_with_logits
  if config.data.load_size or config.data.crop_size or config.data.flip:
    raise ValueError("The PyTorch pix2pix twin trains on the images as stored, without "
                     f"data.load_size={config.data.load_size}, data.crop_size="
                     f"{config.data.crop_size} or data.flip={config.data.flip}.")
  make_inputs, finish = _pix2pix_inputs(config, torch)
  content_weight = config.get("content_weight", 0.0)
  trunk = nets.get("content")  # the content network's frozen conv trunk

  def feats(im):
    if im.shape[1] != 1:  # each channel an image of its own, as features.conv_features
      im = im.reshape(-1, 1, *im.shape[2:])
    return trunk(to_form(im))

  def to(logits, target):
    return bce(logits.float(), torch.full_like(logits.float(), target))

  def step():
    idx = torch.randint(0, images.shape[1], (b,), device=device)  # aligned pairs
    if make_inputs is None:
      x, y = (to_form(images[side][idx].float() / 127.5 - 1.0) for side in (0, 1))
    else:  # inputs made from the targets
      y = to_form(images[1][idx].float() / 127.5 - 1.0)
      x = to_form(make_inputs(y))
    with amp():
      raw = g(x)
      fake = finish(raw, x)
      d_loss = 0.5 * (to(d(x, y), 1.0) + to(d(x, fake.detach()), 0.0))
    opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    opt_d.step()
    d.requires_grad_(False)  # G's loss differentiates G alone, as genjax's step
    with amp():
      err = (raw.float() - y).abs()
      if config.task == "inpaint":
        hole = (x[:, -1:] > 0).float()
        area = lambda m: (m.sum() * y.shape[1]).clamp(min=1.0)
        l1 = (err * hole).sum() / area(hole) + config.known_weight * (
            (err * (1 - hole)).sum() / area(1 - hole))
      else:
        l1 = err.mean()
      loss = config.adv_weight * to(d(x, fake), 1.0) + config.l1_weight * l1
      if trunk is not None:
        with torch.no_grad():
          target_features = feats(y)
        content = (feats(fake).float() - target_features.float()).square().mean()
        loss = loss + content_weight * content
    opt_g.zero_grad(set_to_none=True)
    loss.backward()
    opt_g.step()
    d.requires_grad_(True)
    return loss.detach()

  return step, b


class Twin(NamedTuple):
  """A family's PyTorch twin."""

  modules: Callable  # (config, image_shape) -> {name: torch module}
  step: Callable  # (nets, config, images, device, torch, to_form, amp) -> (step(), images/step)
  forms: tuple[str, ...]  # the FORMS that apply


TWINS = {
    "gan": Twin(twin_networks.dcgan_modules, _gan_step, CONV_FORMS),
    "vae": Twin(twin_networks.vae_modules, _vae_step, DENSE_FORMS),
    "cyclegan": Twin(twin_networks.cyclegan_modules, _cyclegan_step, CONV_FORMS),
    "progan": Twin(twin_networks.progan_modules, _progan_step, ("nchw", "channels_last")),
    "biggan": Twin(twin_networks.biggan_modules, _biggan_step, CONV_FORMS),
    "pix2pix": Twin(twin_networks.pix2pix_modules, _pix2pix_step, CONV_FORMS),
}


def get(family: str) -> Twin:
  """The twin of genjax family `family`; a ValueError names the families that have one."""
  if family not in TWINS:
    raise ValueError(f"No PyTorch twin of family {family!r}; twins exist for {sorted(TWINS)}.")
  return TWINS[family]


def forms_for(family: str) -> tuple[str, ...]:
  """The forms that apply to a family's twin."""
  return get(family).forms


def modules(config, image_shape):
  """The twin's networks for genjax config `config` at images `image_shape` (H, W, C)."""
  return get(config.family).modules(config, image_shape)


def default_device() -> str:
  """'cuda' where torch sees a CUDA GPU, else 'cpu'."""
  import torch

  return "cuda" if torch.cuda.is_available() else "cpu"


def unavailable(form: str, device: str) -> str | None:
  """Why `form` cannot run on `device` ('cpu' or 'cuda'), or None where it can."""
  if FORMS[form].gpu_only and device != "cuda":
    return (f"form {form!r} (torch.compile mode {FORMS[form].compile_mode!r}) captures CUDA "
            f"graphs: GPU only; on the {device.upper()} measure 'compile' or "
            "'compile_channels_last' instead.")
  return None


def make_step(config, image_shape, form: str, num_images: int = 60000, device: str = "",
              precision: str = "float32"):
  """(step, networks, images per step, device): the twin's train step (it
  returns the generator's loss, the VAE's negative bound) in `form` and `precision`, on `num_images` random uint8 images held on the device:
  `device`, else a CUDA GPU where there is one, else the CPU."""
  import torch

  if form not in forms_for(config.family):
    raise ValueError(f"Form {form!r} does not apply to the {config.family} twin; "
                     f"choose from {forms_for(config.family)}.")
  if precision not in PRECISIONS:
    raise ValueError(f"Precision {precision!r} is not one of the twins'; choose from "
                     f"{PRECISIONS}.")
  device = torch.device(device or default_device())
  why = unavailable(form, device.type)
  if why:
    raise ValueError(why[0].upper() + why[1:])
  torch.manual_seed(0)
  random.seed(0)
  spec = FORMS[form]
  nets = {k: v.to(device) for k, v in modules(config, image_shape).items()}
  layout = torch.channels_last if spec.channels_last else torch.contiguous_format
  if spec.channels_last:
    nets = {k: v.to(memory_format=layout) for k, v in nets.items()}
  run = nets
  if spec.compile_mode:
    run = {k: torch.compile(v, mode=spec.compile_mode) for k, v in nets.items()}
  h, w, c = image_shape
  two = config.family in ("cyclegan", "pix2pix")  # two domains; pix2pix's aligned
  shape = (2, num_images, c, h, w) if two else (num_images, c, h, w)
  images = torch.randint(0, 256, shape, dtype=torch.uint8, device=device)

  def to_form(x):
    return x.contiguous(memory_format=layout)

  def amp():
    if precision == "float32":
      return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)

  step, images_per_step = get(config.family).step(run, config, images, device, torch, to_form,
                                                  amp)
  if spec.compile_mode == "reduce-overhead":
    inner = step

    def step():  # a new CUDA graph tree iteration: the last step's outputs may be reused
      torch.compiler.cudagraph_mark_step_begin()
      return inner()

  return step, nets, images_per_step, device


def peak_memory(device) -> dict:
  """The process's peak resident memory, and torch's peak CUDA allocation on a
  GPU (torch.cuda.max_memory_allocated) or None with the reason."""
  import torch

  out = {"peak_rss_mb": peak_rss_mb()}
  if device.type == "cuda":
    out["peak_device_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
  else:
    out["peak_device_mb"] = None
    out["peak_device_mb_why_none"] = "the CPU has no device memory: see peak_rss_mb"
  return out


def measure(config, image_shape, form: str, windows: int, window_seconds: float,
            num_images: int = 60000, precision: str = "float32") -> dict:
  """images/s of the twin's train step in `form` and `precision` (median of
  timed windows), and its peak memory."""
  import torch

  step, nets, images_per_step, device = make_step(config, image_shape, form, num_images,
                                                  precision=precision)

  def run_once():
    step()
    if device.type == "cuda":
      torch.cuda.synchronize()

  if FORMS[form].compile_mode:
    run_once()  # the first calls compile (one graph per input shape); timed_windows warms once more
  rate = timed_windows(run_once, images_per_step, windows, window_seconds)
  return {"torch_version": torch.__version__, "form": form, "precision": precision,
          "device": str(device),
          "device_name": (torch.cuda.get_device_name() if device.type == "cuda" else "cpu"),
          "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
          "batch_size": config.batch_size, "images_per_step": images_per_step,
          "parameters": sum(p.numel() for net in nets.values() for p in net.parameters()),
          "images_per_sec": {k: float(f"{v:.4g}") for k, v in rate.items()},
          "step_seconds": round(images_per_step / rate["median"], 5), **peak_memory(device)}
