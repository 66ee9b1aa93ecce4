"""inrcore: the pure library of inrflow.

Arrays in, arrays out, by domain: `geometry` (meshes, point clouds, sampling, metrics, grids,
cameras, pictures), `fields` (networks as data and their evaluation), `queries` (range bounds,
range meshing, ray casting, iso-points), `sdf` (fitting signed distance fields) and `nerf`
(radiance fields), over the base modules (errors, files, device, settings, report). Imports go
one way (ARCHITECTURE.md). It never imports prefect, dask, zarr, mlflow or fsspec.
"""

__version__ = "0.1.0"
