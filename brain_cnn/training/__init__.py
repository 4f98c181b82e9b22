"""Training a network and writing its model folder: the run, resuming, distribution, distillation, ensembles."""
