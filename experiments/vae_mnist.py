"""VAE on MNIST: `python -m experiments.vae_mnist`.

The one-stochastic-layer VAE of Burda et al. (2016): encoder and decoder with
two deterministic layers of 200 tanh units, 50 latent units, a Bernoulli
decoder on dynamically binarised digits, Adam. Their table gives a test NLL
of 86.76 nats on full MNIST after 3,280 epochs; the default budget here is
far shorter (about 17 epochs of full MNIST), so its numbers are higher; where
full MNIST cannot be had it trains on the 5,000 embedded digits, and its
numbers are not comparable with the table at all.

The `burda_*` presets train the rows of Burda et al.'s Table 1 (one
stochastic layer, MNIST): the same networks, Adam (b1 0.9, b2 0.999, eps
1e-4) at 1e-3 * 10^(-i/7) for 3^i passes, i = 0..7 (3,280 passes), the
VAE (k = 1) or the IWAE bound with k = 5 or 50 samples, and at the end the
IWAE-5000 NLL of all 10,000 test digits (docs/burda.md: the table, times
and commands). Paper: VAE 86.76, IWAE-5 85.54, IWAE-50 84.78 nats. The
presets train at batch 100, where a CPU runs the schedule about 1.8 times
faster than at the paper's 20; `--config.batch_size=20` trains the paper's
batch (the counts follow it).

  python -m experiments.vae_mnist                           # VAE
  python -m experiments.vae_mnist --config.beta=4           # beta-VAE
  python -m experiments.vae_mnist --config.model.latent_dim=2 --workdir runs/vae_2d
  python -m genjax.evaluate --workdir runs/vae_mnist        # ELBO, IWAE-5000 NLL
  python -m experiments.vae_mnist --config=experiments/vae_mnist.py:tiny   # seconds
  python -m experiments.vae_mnist --config=experiments/vae_mnist.py:burda_vae
  python -m experiments.vae_mnist --config=experiments/vae_mnist.py:burda_vae --config.batch_size=20
  python -m experiments.vae_mnist --config=experiments/vae_mnist.py:burda_vae,burda_code
"""

import ml_collections

from genjax import configs

# The rows of Burda et al. (2016), Table 1. These counts are in passes over the
# 60,000 digits (num_steps: the whole schedule, (3^8 - 1) / 2 = 3,280 passes);
# the presets hold them in steps at batch 100 (600 a pass), and get_config
# makes them follow batch_size.
_BURDA_PASSES = {"num_steps": 3280, "eval_every": 100, "checkpoint_every": 25}
# steps_per_call 50: the MLP's steps run in a rolled loop on CPU as well
# (parallel.unroll_steps), so more steps per call cost no compile time and
# spread the host's work of a call over more steps.
_BURDA = {"opt.schedule": "burda", "opt.examples_per_pass": 60000, "final_iwae_k": 5000,
          "metrics_num_samples": 0, "steps_per_call": 50,
          **{k: n * 600 for k, n in _BURDA_PASSES.items()}}
BURDA_PRESETS = {"burda_vae": 1, "burda_iwae5": 5, "burda_iwae50": 50}  # preset: k

PRESETS = {
    "tiny": ({"num_steps": 300, "eval_every": 300, "checkpoint_every": 300,
              "num_eval_samples": 16, "model.hidden": (64,), "model.latent_dim": 8},
             "a small VAE trained for seconds, for tests"),
    "latent2d": ({"model.latent_dim": 2, "num_steps": 1500, "eval_every": 1500,
                  "checkpoint_every": 1500, "metrics_num_samples": 0},
                 "a 2-D latent space to look at: scatter and manifold grids "
                 "(notebooks/vae_latent_space)"),
    "burda_code": ({"opt.variant": "burda", "opt.b1": 0.99, "model.weight_init": "glorot"},
                   "after a burda_* preset: Burda et al.'s code's Adam (b1 0.99) and Glorot "
                   "uniform weights (not its output bias or shared seeds; docs/burda.md)"),
    **{name: ({**_BURDA, "iwae_k_train": k},
              f"Burda et al.'s {'VAE' if k == 1 else f'IWAE, k={k}'}: 3,280 passes of their "
              "schedule, IWAE-5000 at the end")
       for name, k in BURDA_PRESETS.items()},
}


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
  """The default config, or presets of PRESETS.

  With a `burda_*` preset, num_steps (the whole schedule, 3,280 passes),
  eval_every (100 passes) and checkpoint_every (25 passes) are counted in
  passes of opt.examples_per_pass: they follow --config.batch_size, unless
  set themselves (as the `tiny` preset and the command line may).
  """
  config = _base_config()
  names = [n.strip() for n in (preset or "").split(",")]
  for i, name in enumerate(names):
    if name in BURDA_PRESETS:  # its literal counts, as references, before later presets
      configs.with_presets(config, PRESETS, ",".join(names[:i + 1]))
      steps_per_pass = config.opt.get_ref("examples_per_pass") // config.get_ref("batch_size")
      for key, passes in _BURDA_PASSES.items():
        config[key] = passes * steps_per_pass
      return configs.with_presets(config, PRESETS, ",".join(names[i + 1:]))
  return configs.with_presets(config, PRESETS, preset)


def _base_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.family = "vae"
  config.seed = 0
  config.batch_size = 100
  config.num_steps = 10000
  config.beta = 1.0  # KL weight: 1 = VAE, > 1 = beta-VAE (Higgins et al. 2017)
  config.kl_warmup_steps = 0  # beta ramps linearly from 0 over these steps
  # The training bound: 0 = the ELBO with the analytic KL; k >= 1 = the IWAE-k
  # bound with k samples of z per image (Burda et al. 2016; k = 1 is the ELBO
  # with a sampled KL); beta must then be 1.
  config.iwae_k_train = 0
  # At the evaluation of the last step, also the IWAE-k NLL (nats) of the whole
  # test split, as `genjax.evaluate --iwae_k` computes it; 0 = off.
  config.final_iwae_k = 0

  config.model = ml_collections.ConfigDict()
  config.model.arch = "mlp"  # mlp | conv
  config.model.latent_dim = 50
  config.model.hidden = (200, 200)  # mlp: deterministic layers
  config.model.width = 32  # conv: channels of the first conv
  config.model.activation = "tanh"  # tanh | relu | elu
  config.model.weight_init = ""  # mlp: "" = Flax's LeCun normal | "glorot" (Burda et al.'s code)
  config.model.likelihood = "bernoulli"  # bernoulli | gaussian
  config.model.learn_variance = True  # gaussian: per-pixel learned log-variance
  config.model.fixed_logvar = 0.0  # gaussian, when not learned

  config.opt = ml_collections.ConfigDict()
  # "" = Adam (Kingma and Ba) | "burda": Adam as Burda et al.'s code runs it
  # (genjax.optim.scale_by_burda_adam: second moments from 1, the previous
  # step's moments, the gradient of the batch's sum); their code's b1 is 0.99.
  config.opt.variant = ""
  config.opt.lr = 1e-3  # Adam, epsilon 1e-4 as Burda et al.
  config.opt.b1 = 0.9
  config.opt.b2 = 0.999
  config.opt.eps = 1e-4
  # "" = a constant rate; "burda" = times 10^(-i/7) for 3^i passes, i = 0..7
  # (Burda et al. 2016), a pass being examples_per_pass examples.
  config.opt.schedule = ""
  config.opt.examples_per_pass = 0  # the training split's size (60000 for MNIST)

  config.data = ml_collections.ConfigDict()
  config.data.name = "mnist"
  config.data.data_dir = ""  # TFDS data_dir; "" = $TFDS_DATA_DIR or ~/tensorflow_datasets
  config.data.idx_dir = ""  # folder of MNIST-format IDX files (offline path)
  config.data.download = True
  config.data.pipeline = "device"  # device (held on the devices) | stream (read by the host) | auto
  config.data.threads = 4  # stream: reader threads per process

  config.steps_per_call = 10
  config.eval_every = 2000  # grids, test ELBO and active units
  config.checkpoint_every = 5000
  config.keep_checkpoints = 3
  config.num_eval_samples = 64
  config.grid_scale = 2  # PNG grids upscaled (nearest neighbour) to a size one can look at
  # FID, KID and classifier score of this many samples against the test split
  # at every evaluation, in the dataset's feature network; the state with the
  # lowest FID is kept in best_checkpoint/. 0 turns this off.
  config.metrics_num_samples = 2000
  return config


if __name__ == "__main__":
  from genjax import cli
  cli.main(get_config, default_workdir="runs/vae_mnist")
