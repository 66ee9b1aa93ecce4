"""Geometry without networks: meshes and point clouds (reading, normalising), sampling of signed
distances, surface metrics, marching cubes on grids, cameras and rays, pictures.
"""
