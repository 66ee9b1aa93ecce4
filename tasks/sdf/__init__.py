"""Tasks of the shape-collection flow: samples, training, grid evaluation, surface and metrics."""
