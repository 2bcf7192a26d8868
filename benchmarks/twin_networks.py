"""The networks of the PyTorch twins (benchmarks/twins.py), one builder per
family: config and image shape (H, W, C) in, {name: torch module} out, with
genjax's layers, widths and parameter counts (tests/test_benchmark_twins.py
holds them to genjax's modules)."""

import math

def dcgan_modules(config, image_shape):
  """{'generator', 'discriminator'} of gan_mnist's DCGAN (unconditional, no SN)."""
  from torch import nn

  from genjax.models.gan import networks as dcgan

  m = config.model
  size, channels = image_shape[0], image_shape[-1]
  n_up, start = dcgan.num_upsamplings(size), dcgan.START_SIZE[size]
  if m.upsample != "subpixel" or config.get("conditional") or m.spectral_norm:
    raise ValueError("The PyTorch DCGAN twin is unconditional with sub-pixel upsampling "
                     "and no spectral norm.")
  if m.g_kernel_size % 2 == 0:
    raise ValueError(f"The PyTorch DCGAN twin needs an odd model.g_kernel_size, got "
                     f"{m.g_kernel_size}.")
  kg, kd = m.g_kernel_size, m.d_kernel_size
  top = m.g_width * 2**n_up
  g_layers = [nn.Linear(m.latent_dim, start * start * top), nn.Unflatten(1, (top, start, start)),
              nn.BatchNorm2d(top), nn.ReLU()]
  width = top
  for i in range(n_up):
    out = m.g_width * 2 ** (n_up - 1 - i)
    g_layers += [nn.Conv2d(width, 4 * out, kg, padding=kg // 2), nn.PixelShuffle(2),
                 nn.BatchNorm2d(out), nn.ReLU()]
    width = out
  g_layers += [nn.Conv2d(width, channels, kg, padding=kg // 2), nn.Tanh()]
  d_layers, width, side = [], channels, size
  for i in range(n_up):
    out = m.d_width * 2**i
    d_layers += [nn.Conv2d(width, out, kd, stride=2, padding=(kd - 1) // 2), nn.LeakyReLU(0.2)]
    width, side = out, side // 2
  d_layers += [nn.Flatten(), nn.Linear(width * side * side, 1)]
  return {"generator": nn.Sequential(*g_layers), "discriminator": nn.Sequential(*d_layers)}


def vae_modules(config, image_shape):
  """{'encoder', 'decoder'} of vae_mnist's MLP VAE (Bernoulli likelihood)."""
  from torch import nn

  m = config.model
  if (m.arch, m.get("activation", "tanh"), m.get("likelihood", "bernoulli")) != (
      "mlp", "tanh", "bernoulli"):
    raise ValueError("The PyTorch VAE twin is the tanh MLP VAE with a Bernoulli likelihood, "
                     f"not model.arch={m.arch!r}, activation={m.get('activation')!r}, "
                     f"likelihood={m.get('likelihood')!r}.")
  pixels = math.prod(image_shape)

  def mlp(width_in, width_out):
    layers = []
    for width in m.hidden:
      layers += [nn.Linear(width_in, width), nn.Tanh()]
      width_in = width
    return nn.Sequential(*layers, nn.Linear(width_in, width_out))

  return {"encoder": mlp(pixels, 2 * m.latent_dim), "decoder": mlp(m.latent_dim, pixels)}


def cyclegan_modules(config, image_shape):
  """{'g_ab', 'g_ba', 'd_a', 'd_b'} of a CycleGAN config, as the authors' code builds them."""
  from torch import nn

  m, channels = config.model, image_shape[-1]

  def norm(c):
    return nn.InstanceNorm2d(c, affine=False, track_running_stats=False, eps=1e-5)

  class Residual(nn.Module):

    def __init__(self, c):
      super().__init__()
      self.body = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), norm(c), nn.ReLU(),
                                nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), norm(c))

    def forward(self, x):
      return x + self.body(x)

  def upsample(c_in, c_out):
    if m.upsample == "subpixel":
      return [nn.Conv2d(c_in, 4 * c_out, 3, padding=1), nn.PixelShuffle(2)]
    if m.upsample == "transpose":
      return [nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1)]
    return [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, 3, padding=1)]

  def generator():
    w = m.g_width
    layers = [nn.ReflectionPad2d(3), nn.Conv2d(channels, w, 7), norm(w), nn.ReLU()]
    for i in range(m.g_down):
      layers += [nn.Conv2d(w * 2**i, w * 2 ** (i + 1), 3, stride=2, padding=1),
                 norm(w * 2 ** (i + 1)), nn.ReLU()]
    layers += [Residual(w * 2**m.g_down) for _ in range(m.g_blocks)]
    for i in reversed(range(m.g_down)):
      layers += [*upsample(w * 2 ** (i + 1), w * 2**i), norm(w * 2**i), nn.ReLU()]
    layers += [nn.ReflectionPad2d(3), nn.Conv2d(w, channels, 7), nn.Tanh()]
    return nn.Sequential(*layers)

  def discriminator():
    w = m.d_width
    layers = [nn.Conv2d(channels, w, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
    width = w
    for n in range(1, m.d_layers):
      out = w * min(2**n, 8)
      layers += [nn.Conv2d(width, out, 4, stride=2, padding=1), norm(out), nn.LeakyReLU(0.2)]
      width = out
    out = w * min(2**m.d_layers, 8)
    layers += [nn.Conv2d(width, out, 4, padding=1), norm(out), nn.LeakyReLU(0.2),
               nn.Conv2d(out, 1, 4, padding=1)]
    return nn.Sequential(*layers)

  return {"g_ab": generator(), "g_ba": generator(), "d_a": discriminator(),
          "d_b": discriminator()}


def progan_modules(config, image_shape):
  """{'generator', 'discriminator'} of genjax.nn.progan in PyTorch, at every
  level up to the final resolution (the power of two the data are padded
  to); called as G(z, level, alpha) and D(x, level, alpha), each with its
  `levels`."""
  import torch
  from torch import nn
  import torch.nn.functional as F

  from genjax.models.progan import networks as nets
  from genjax.models.progan import step as progan

  m, channels = config.model, image_shape[-1]
  levels = nets.num_levels(progan.final_resolution(image_shape[0]))
  g_widths = nets.widths(m.g_width, m.max_width, levels)
  d_widths = nets.widths(m.d_width, m.max_width, levels)
  class EqualConv(nn.Module):
    def __init__(self, c, f, k=3, gain=math.sqrt(2.0)):
      super().__init__()
      self.weight = nn.Parameter(torch.randn(f, c, k, k))
      self.bias = nn.Parameter(torch.zeros(f))
      self.scale, self.pad = gain / math.sqrt(c * k * k), k // 2

    def forward(self, x):
      return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.pad)

  class EqualDense(nn.Module):
    def __init__(self, c, f, gain=math.sqrt(2.0)):
      super().__init__()
      self.weight = nn.Parameter(torch.randn(f, c))
      self.bias = nn.Parameter(torch.zeros(f))
      self.scale = gain / math.sqrt(c)

    def forward(self, x):
      return F.linear(x, self.weight * self.scale, self.bias)

  def act(x):
    return F.leaky_relu(x, 0.2)

  def pixel_norm(x, dim=1):
    return x * torch.rsqrt(torch.mean(x * x, dim=dim, keepdim=True) + 1e-8)

  def up(x):
    return F.interpolate(x, scale_factor=2, mode="nearest")

  def down(x):
    return F.avg_pool2d(x, 2)

  def mbstd(x, group):
    b, c, h, w = x.shape
    y = x.reshape(b // group, group, c, h, w)
    y = y - y.mean(1, keepdim=True)
    s = torch.sqrt(torch.mean(y * y, 1) + 1e-8).mean((1, 2, 3))  # [B/g]
    s = s[:, None, None, None, None].expand(b // group, group, 1, h, w).reshape(b, 1, h, w)
    return torch.cat([x, s], 1)

  class Generator(nn.Module):
    def __init__(self):
      super().__init__()
      self.head = EqualDense(m.latent_dim, 16 * g_widths[0], gain=math.sqrt(2.0) / 4)
      self.head_conv = EqualConv(g_widths[0], g_widths[0])
      self.blocks = nn.ModuleList(
          nn.ModuleList([EqualConv(g_widths[l - 1], g_widths[l]),
                         EqualConv(g_widths[l], g_widths[l])]) for l in range(1, levels))
      self.to_rgb = nn.ModuleList(EqualConv(w, channels, 1, 1.0) for w in g_widths)

    def forward(self, z, level, alpha):
      h = pixel_norm(act(self.head(pixel_norm(z))).reshape(-1, g_widths[0], 4, 4))
      hs = [pixel_norm(act(self.head_conv(h)))]
      for a, b in self.blocks[:level]:
        h = pixel_norm(act(a(up(hs[-1]))))
        hs.append(pixel_norm(act(b(h))))
      new = self.to_rgb[level](hs[level])
      if level == 0:
        return new
      return (1 - alpha) * up(self.to_rgb[level - 1](hs[level - 1])) + alpha * new

  class Discriminator(nn.Module):
    def __init__(self):
      super().__init__()
      self.from_rgb = nn.ModuleList(EqualConv(channels, w, 1) for w in d_widths)
      self.blocks = nn.ModuleList(
          nn.ModuleList([EqualConv(d_widths[l], d_widths[l]),
                         EqualConv(d_widths[l], d_widths[l - 1])]) for l in range(1, levels))
      self.head_conv = EqualConv(d_widths[0] + 1, d_widths[0])
      self.head_dense = EqualDense(16 * d_widths[0], d_widths[0])
      self.out = EqualDense(d_widths[0], 1, gain=1.0)

    def block(self, l, h):
      a, b = self.blocks[l - 1]
      return down(act(b(act(a(h)))))

    def forward(self, x, level, alpha):
      h = act(self.from_rgb[level](x))
      if level > 0:
        h = (1 - alpha) * act(self.from_rgb[level - 1](down(x))) + alpha * self.block(level, h)
        for l in range(level - 1, 0, -1):
          h = self.block(l, h)
      h = act(self.head_conv(mbstd(h, m.mbstd_group)))
      # The same flattening order as genjax's NHWC reshape.
      h = act(self.head_dense(h.permute(0, 2, 3, 1).reshape(h.shape[0], -1)))
      return self.out(h)[:, 0]

  generator, discriminator = Generator(), Discriminator()
  generator.levels = discriminator.levels = levels
  return {"generator": generator, "discriminator": discriminator}


def biggan_modules(config, image_shape, num_classes: int = 10):
  """{'generator', 'discriminator'} of genjax.models.biggan in PyTorch: residual
  blocks, self-attention at `model.attention`, spectral norm on every weight
  (torch.nn.utils.parametrizations.spectral_norm, one power iteration per
  call in training mode); with config.conditional, class-conditional batch
  norm from a shared embedding of `num_classes` classes, hierarchical
  latents and a projection discriminator. Called as G(z, labels) and
  D(x, labels)."""
  import torch
  from torch import nn
  import torch.nn.functional as F
  from torch.nn.utils.parametrizations import spectral_norm as sn

  from genjax.models.biggan import networks as nets

  m, size, channels = config.model, image_shape[0], image_shape[-1]
  if size not in nets.WIDTHS or image_shape[1] != size:
    raise ValueError(f"The PyTorch BigGAN twin makes square images of {nets.IMAGE_SIZES} px, "
                     f"not {image_shape}.")
  g_mults, d_blocks = nets.WIDTHS[size]
  classes = num_classes if config.conditional and num_classes > 1 else 0
  chunks = nets.latent_chunks(m.latent_dim, size, bool(classes))

  def conv(c, f, k, bias=True):
    return sn(nn.Conv2d(c, f, k, padding=k // 2, bias=bias))

  def bn(c, affine=True):
    return nn.BatchNorm2d(c, eps=1e-4, momentum=0.1, affine=affine)  # flax's momentum 0.9

  class ConditionalBatchNorm(nn.Module):
    def __init__(self, c, cond_dim):
      super().__init__()
      self.bn = bn(c, affine=not cond_dim)
      if cond_dim:
        self.gain = sn(nn.Linear(cond_dim, c, bias=False))
        self.bias = sn(nn.Linear(cond_dim, c, bias=False))

    def forward(self, x, cond):
      h = self.bn(x)
      if cond is None:
        return h
      return h * (1 + self.gain(cond))[:, :, None, None] + self.bias(cond)[:, :, None, None]

  class SelfAttention(nn.Module):
    def __init__(self, c):
      super().__init__()
      self.k, self.v = max(c // 8, 1), max(c // 2, 1)
      self.theta, self.phi = conv(c, self.k, 1, False), conv(c, self.k, 1, False)
      self.g, self.o = conv(c, self.v, 1, False), conv(self.v, c, 1, False)
      self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x):
      b, _, h, w = x.shape
      theta = self.theta(x).flatten(2)  # [B, C/8, N]
      phi = F.max_pool2d(self.phi(x), 2).flatten(2)  # [B, C/8, N/4]
      g = F.max_pool2d(self.g(x), 2).flatten(2)  # [B, C/2, N/4]
      attention = torch.softmax(torch.bmm(theta.transpose(1, 2), phi).float(), -1).to(g.dtype)
      o = torch.bmm(g, attention.transpose(1, 2)).reshape(b, self.v, h, w)
      return x + self.gamma * self.o(o)

  class GBlock(nn.Module):
    def __init__(self, c, f, cond_dim):
      super().__init__()
      self.bn_0, self.bn_1 = ConditionalBatchNorm(c, cond_dim), ConditionalBatchNorm(f, cond_dim)
      self.conv_0, self.conv_1, self.skip = conv(c, f, 3), conv(f, f, 3), conv(c, f, 1)

    def forward(self, x, cond):
      up = lambda t: F.interpolate(t, scale_factor=2, mode="nearest")
      h = self.conv_0(up(F.relu(self.bn_0(x, cond))))
      h = self.conv_1(F.relu(self.bn_1(h, cond)))
      return h + up(self.skip(x))  # a 1x1 conv commutes with nearest upsampling

  class DBlock(nn.Module):
    def __init__(self, c, f, preactivation, downsample):
      super().__init__()
      self.preactivation, self.downsample = preactivation, downsample
      self.conv_0, self.conv_1, self.skip = conv(c, f, 3), conv(f, f, 3), conv(c, f, 1)

    def forward(self, x):
      pool = (lambda t: F.avg_pool2d(t, 2)) if self.downsample else (lambda t: t)
      h = F.relu(x) if self.preactivation else x
      h = self.conv_1(F.relu(self.conv_0(h)))
      return pool(h) + self.skip(pool(x))  # and with average pooling

  class Generator(nn.Module):
    def __init__(self):
      super().__init__()
      widths = [m.ch * k for k in g_mults]
      cond_dim = chunks[-1] + m.shared_dim if classes else 0
      if classes:
        self.shared = nn.Embedding(classes, m.shared_dim)  # not spectrally normalised
      self.linear = sn(nn.Linear(chunks[0], 16 * widths[0]))
      self.blocks = nn.ModuleList(GBlock(c, f, cond_dim) for c, f in zip(widths, widths[1:]))
      self.attention_after = [4 * 2 ** (i + 1) == m.attention for i in range(len(self.blocks))]
      attend = [w for w, a in zip(widths[1:], self.attention_after) if a]
      self.attention = SelfAttention(attend[0]) if attend else None
      self.bn_out, self.conv_out = bn(widths[-1]), conv(widths[-1], channels, 3)
      self.widths = widths

    def forward(self, z, labels=None):
      zs = torch.split(z, list(chunks), dim=1)
      conds = [None] * len(self.blocks)
      if classes:
        shared = self.shared(labels)
        conds = [torch.cat([zi, shared], 1) for zi in zs[1:]]
      h = self.linear(zs[0]).reshape(z.shape[0], self.widths[0], 4, 4)
      for block, cond, attend in zip(self.blocks, conds, self.attention_after):
        h = block(h, cond)
        if attend:
          h = self.attention(h)
      return torch.tanh(self.conv_out(F.relu(self.bn_out(h)))).float()

  class Discriminator(nn.Module):
    def __init__(self):
      super().__init__()
      widths, blocks, res, self.attention_after = [channels], [], size, []
      for i, (k, down) in enumerate(d_blocks):
        blocks.append(DBlock(widths[-1], m.ch * k, preactivation=i > 0, downsample=down))
        widths.append(m.ch * k)
        res = res // 2 if down else res
        self.attention_after.append(res == m.attention and down)
      self.blocks = nn.ModuleList(blocks)
      attend = [w for w, a in zip(widths[1:], self.attention_after) if a]
      self.attention = SelfAttention(attend[0]) if attend else None
      self.linear = sn(nn.Linear(widths[-1], 1))
      if classes:
        self.embed = sn(nn.Embedding(classes, widths[-1]))

    def forward(self, x, labels=None):
      h = x
      for block, attend in zip(self.blocks, self.attention_after):
        h = block(h)
        if attend:
          h = self.attention(h)
      h = F.relu(h).sum((2, 3))  # [B, F]
      logits = self.linear(h)[:, 0]
      if classes:
        logits = logits + (self.embed(labels) * h).sum(1)
      return logits.float()

  generator, discriminator = Generator(), Discriminator()
  generator.num_classes = discriminator.num_classes = classes
  return {"generator": generator, "discriminator": discriminator}


def pix2pix_modules(config, image_shape):
  """{'generator', 'discriminator'} of genjax.models.pix2pix in PyTorch: the
  U-Net (4x4 stride-2 convolutions, leaky ReLU 0.2 down, ReLU and transposed
  convolutions up, skips to the mirror encoder layer, dropout on the decoder
  layers outside the innermost, active in training), or with
  model.generator=srresnet SRGAN's residual generator (pixel_unshuffle of
  the bicubic input by data.scale, residual blocks, pixel_shuffle
  upsamplings, PReLU), and the PatchGAN on (input, output) pairs, called as
  D(x, y) -> patch logits [B, h, w] (for inpainting x has the mask as an
  extra channel), and with a content_network 'content': the frozen conv
  trunk of the content loss (content_trunk). Every convolution has a bias,
  as genjax's; batch norm by the batch's statistics (no running averages),
  or instance norm without affine parameters."""
  import torch
  from torch import nn

  from genjax.models.pix2pix import networks as nets

  m, channels = config.model, image_shape[-1]
  in_channels = channels + 1 if config.task == "inpaint" else channels  # + the mask
  widths = nets.unet_widths(m.g_width, m.g_down)
  inner = m.g_down - 1

  def norm(c):
    if m.norm == "batch":
      return nn.BatchNorm2d(c, eps=1e-5, track_running_stats=False)
    return nn.InstanceNorm2d(c, eps=1e-5, affine=False, track_running_stats=False)

  def down(c, f, stride=2):
    return nn.Conv2d(c, f, 4, stride=stride, padding=1)

  class UNet(nn.Module):
    def __init__(self):
      super().__init__()
      self.down = nn.ModuleList(down(c, f) for c, f in zip([in_channels, *widths], widths))
      self.down_norm = nn.ModuleList(norm(w) if 0 < i < inner else nn.Identity()
                                     for i, w in enumerate(widths))
      ups, up_norm, drop = [], [], []
      for i in reversed(range(m.g_down)):
        c = widths[i] if i == inner else 2 * widths[i]
        f = channels if i == 0 else widths[i - 1]
        ups.append(nn.ConvTranspose2d(c, f, 4, stride=2, padding=1))
        up_norm.append(norm(f) if i else nn.Identity())
        dropout = m.dropout and inner - m.dropout_layers <= i < inner
        drop.append(nn.Dropout(m.dropout) if dropout else nn.Identity())
      self.up, self.up_norm, self.drop = (nn.ModuleList(ups), nn.ModuleList(up_norm),
                                          nn.ModuleList(drop))

    def forward(self, x):
      skips, h = [], x
      for i, (conv, n) in enumerate(zip(self.down, self.down_norm)):
        h = n(conv(torch.nn.functional.leaky_relu(h, 0.2) if i else h))
        skips.append(h)
      for j, (conv, n, drop) in enumerate(zip(self.up, self.up_norm, self.drop)):
        i = inner - j
        if i < inner:
          h = torch.cat([skips[i], h], 1)
        h = drop(n(conv(torch.relu(h))))
      return torch.tanh(h).float()

  class PatchGAN(nn.Module):
    def __init__(self):
      super().__init__()
      layers, width = [down(in_channels + channels, m.d_width), nn.LeakyReLU(0.2)], m.d_width
      for n in range(1, m.d_layers):
        out = m.d_width * min(2**n, 8)
        layers += [down(width, out), norm(out), nn.LeakyReLU(0.2)]
        width = out
      out = m.d_width * min(2**m.d_layers, 8)
      layers += [down(width, out, 1), norm(out), nn.LeakyReLU(0.2), down(out, 1, 1)]
      self.net = nn.Sequential(*layers)

    def forward(self, x, y):
      return self.net(torch.cat([x, y], 1))[:, 0].float()

  class Block(nn.Module):
    def __init__(self, w):
      super().__init__()
      self.body = nn.Sequential(nn.Conv2d(w, w, 3, padding=1), norm(w), nn.PReLU(),
                                nn.Conv2d(w, w, 3, padding=1), norm(w))

    def forward(self, x):
      return x + self.body(x)

  class SRResNet(nn.Module):
    def __init__(self):
      super().__init__()
      s, w = config.data.scale, m.g_width
      self.scale = s
      self.head = nn.Sequential(nn.Conv2d(channels * s * s, w, 3, padding=1), nn.PReLU())
      self.blocks = nn.Sequential(*(Block(w) for _ in range(m.res_blocks)))
      self.tail = nn.Sequential(nn.Conv2d(w, w, 3, padding=1), norm(w))
      up = []
      for f in nets.upsample_steps(s):
        up += [nn.Conv2d(w, w * f * f, 3, padding=1), nn.PixelShuffle(f), nn.PReLU()]
      self.up = nn.Sequential(*up, nn.Conv2d(w, channels, 3, padding=1))

    def forward(self, x):
      h = self.head(torch.nn.functional.pixel_unshuffle(x, self.scale))
      h = h + self.tail(self.blocks(h))
      return torch.tanh(self.up(h)).float()

  generator = SRResNet() if m.get("generator", "unet") == "srresnet" else UNet()
  nets = {"generator": generator, "discriminator": PatchGAN()}
  if config.get("content_network", ""):  # frozen, its weights random: the same cost
    from genjax.metrics import features
    nets["content"] = content_trunk(features.load(config.content_network).record)
  return nets


def content_trunk(record: dict):
  """The conv layers of genjax.metrics.features.Classifier (3x3 convs, ReLU,
  2x2 average pooling between blocks) up to the second block's last ReLU:
  genjax.metrics.features.conv_features, frozen, for the content loss."""
  from torch import nn

  c, (w1, w2) = record["image_shape"][-1], record.get("widths", (32, 64))
  trunk = nn.Sequential(nn.Conv2d(c, w1, 3, padding=1), nn.ReLU(), nn.Conv2d(w1, w1, 3, padding=1),
                        nn.ReLU(), nn.AvgPool2d(2), nn.Conv2d(w1, w2, 3, padding=1), nn.ReLU(),
                        nn.Conv2d(w2, w2, 3, padding=1), nn.ReLU())
  return trunk.requires_grad_(False)
