"""Radiance fields: encodings, volume rendering, NeRF and Instant-NGP models, training and
pictures, Blender-format scenes, scenes rendered from meshes, ray batches.
"""
