"""Networks as data (layer specs plus a flat dict of tensors), composite fields such as IDF, their
exact evaluation on points and grids, and weights files.
"""
