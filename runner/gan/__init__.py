"""GANs: the config blocks, the adversarial Keras model with its train_step, sample grids, FID and the task hooks."""
