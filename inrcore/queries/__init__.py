"""Queries on a neural implicit: interval and affine range bounds, range meshing, ray and frustum
casting, iso-points, closest points and intersection.
"""
