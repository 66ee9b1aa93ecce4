"""Tasks of the NeRF collection flow: scenes, rays, radiance-field training."""
