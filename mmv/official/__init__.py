"""Reading DeepMind's released MMV (JAX/Haiku) checkpoints."""
