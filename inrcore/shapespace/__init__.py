"""Learned shape spaces: the DeepSDF auto-decoder (Park et al. 2019) with completion from partial
scans, the Occupancy Network (Mescheder et al. 2019), their samples, and a procedural collection
to learn from. Members of a DeepSDF shape space fold into ordinary network-as-data fields."""
