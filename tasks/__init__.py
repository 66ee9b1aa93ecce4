"""Prefect tasks of inrflow: load inputs, call inrcore, store results (Zarr, MLflow, files).

Only this package touches Zarr and MLflow. Tasks exchange URIs, ids, fingerprints and
small JSON-ready dicts, never tensors.
"""
