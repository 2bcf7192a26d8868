"""genjax: GANs, VAEs and CycleGAN in functional JAX.

The library is pure functions and Flax modules; the command lines live in
`experiments/`, `genjax.sample` and `genjax.evaluate`. Importing it changes
no process-wide state: entry points call `genjax.runtime.configure()`.
"""
