"""gan_mnist's default DCGAN written in PyTorch, timed like genjax's step.

The yardstick of `python -m experiments.benchmark`: the same generator
(dense to 7x7x128, two sub-pixel upsamplings by a 3x3 conv and pixel
shuffle, batch norm, ReLU, a 3x3 conv to one channel, tanh), the same
discriminator (two 4x4 stride-2 convs with leaky ReLU 0.2, a dense logit),
batch 64, the non-saturating loss, Adam(2e-4, 0.5, 0.999), one generator
forward pass per step, and real batches gathered from uint8 images held in
memory, as the usual PyTorch DCGAN training loop writes it. On a machine
with a CUDA GPU it runs there (synchronising after each step), else on the
CPU. Needs torch (`pip install -e ".[bench]"`); genjax itself never imports it.

`measure_vae` times vae_mnist's default VAE the same way: Burda et al.'s
MLPs (784-200-200-2x50 tanh encoder, 50-200-200-784 tanh decoder), batch
100, dynamically binarised uint8 digits held in memory, one reparameterised
sample, the Bernoulli likelihood from logits, the analytic KL, and
Adam(1e-3, 0.9, 0.999, eps 1e-4).
"""

import os


def build(latent_dim: int = 100, g_width: int = 32, d_width: int = 64):
  import torch
  from torch import nn

  generator = nn.Sequential(
      nn.Linear(latent_dim, 7 * 7 * g_width * 4),
      nn.Unflatten(1, (g_width * 4, 7, 7)),
      nn.BatchNorm2d(g_width * 4, momentum=0.1), nn.ReLU(),
      nn.Conv2d(g_width * 4, 4 * g_width * 2, 3, padding=1), nn.PixelShuffle(2),
      nn.BatchNorm2d(g_width * 2), nn.ReLU(),
      nn.Conv2d(g_width * 2, 4 * g_width, 3, padding=1), nn.PixelShuffle(2),
      nn.BatchNorm2d(g_width), nn.ReLU(),
      nn.Conv2d(g_width, 1, 3, padding=1), nn.Tanh(),
  )
  discriminator = nn.Sequential(
      nn.Conv2d(1, d_width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
      nn.Conv2d(d_width, 2 * d_width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
      nn.Flatten(), nn.Linear(2 * d_width * 7 * 7, 1),
  )
  return generator, discriminator, torch


def measure(windows: int, window_seconds: float, batch_size: int = 64,
            latent_dim: int = 100) -> dict:
  """images/s of the PyTorch train step (median of timed windows)."""
  from experiments.benchmark import timed_windows

  generator, discriminator, torch = build(latent_dim)
  device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
  generator, discriminator = generator.to(device), discriminator.to(device)
  torch.manual_seed(0)
  opt_g = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
  opt_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
  bce = torch.nn.functional.binary_cross_entropy_with_logits
  images = torch.randint(0, 256, (5000, 1, 28, 28), dtype=torch.uint8, device=device)
  ones = torch.ones(batch_size, device=device)
  zeros = torch.zeros(batch_size, device=device)

  def step():
    idx = torch.randint(0, images.shape[0], (batch_size,), device=device)
    real = images[idx].float() / 127.5 - 1.0
    fake = generator(torch.randn(batch_size, latent_dim, device=device))
    logits = discriminator(torch.cat([real, fake.detach()]))[:, 0]
    d_loss = bce(logits[:batch_size], ones) + bce(logits[batch_size:], zeros)
    opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    opt_d.step()
    g_loss = bce(discriminator(fake)[:, 0], ones)
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_g.step()
    if device.type == "cuda":
      torch.cuda.synchronize()

  rate = timed_windows(step, batch_size, windows, window_seconds)
  return {"torch_version": torch.__version__, "device": str(device),
          "device_name": (torch.cuda.get_device_name() if device.type == "cuda" else "cpu"),
          "threads": torch.get_num_threads(),
          "cpu_count": os.cpu_count(), "batch_size": batch_size,
          "images_per_sec": {k: round(v, 1) for k, v in rate.items()},
          "step_seconds": round(batch_size / rate["median"], 4)}


def build_vae(latent_dim: int = 50, hidden: int = 200, pixels: int = 784):
  import torch
  from torch import nn

  encoder = nn.Sequential(nn.Linear(pixels, hidden), nn.Tanh(), nn.Linear(hidden, hidden),
                          nn.Tanh(), nn.Linear(hidden, 2 * latent_dim))
  decoder = nn.Sequential(nn.Linear(latent_dim, hidden), nn.Tanh(), nn.Linear(hidden, hidden),
                          nn.Tanh(), nn.Linear(hidden, pixels))
  return encoder, decoder, torch


def measure_vae(windows: int, window_seconds: float, batch_size: int = 100) -> dict:
  """images/s of the PyTorch VAE train step (median of timed windows)."""
  from experiments.benchmark import timed_windows

  encoder, decoder, torch = build_vae()
  device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
  encoder, decoder = encoder.to(device), decoder.to(device)
  torch.manual_seed(0)
  opt = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=1e-3,
                         betas=(0.9, 0.999), eps=1e-4)
  bce = torch.nn.functional.binary_cross_entropy_with_logits
  images = torch.randint(0, 256, (60000, 784), dtype=torch.uint8, device=device)

  def step():
    idx = torch.randint(0, images.shape[0], (batch_size,), device=device)
    x = torch.bernoulli(images[idx].float() / 255.0)
    mean, logvar = encoder(x).chunk(2, dim=1)
    z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
    log_px_z = -bce(decoder(z), x, reduction="none").sum(1)
    kl = 0.5 * (logvar.exp() + mean**2 - 1.0 - logvar).sum(1)
    loss = -(log_px_z - kl).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    if device.type == "cuda":
      torch.cuda.synchronize()

  rate = timed_windows(step, batch_size, windows, window_seconds)
  return {"torch_version": torch.__version__, "device": str(device),
          "device_name": (torch.cuda.get_device_name() if device.type == "cuda" else "cpu"),
          "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
          "batch_size": batch_size, "images_per_sec": {k: round(v, 1) for k, v in rate.items()},
          "step_seconds": round(batch_size / rate["median"], 5)}
