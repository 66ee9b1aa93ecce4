"""inrcore: the pure library of inrflow.

Arrays in, arrays out: meshes, samplers, networks as data, losses, training loops,
field evaluation, surface extraction and metrics. It depends on torch, numpy, scipy,
trimesh, scikit-image and libigl only; it never imports prefect, dask, zarr or mlflow.
"""

__version__ = "0.1.0"
