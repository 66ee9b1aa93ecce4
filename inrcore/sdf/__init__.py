"""Fitting neural signed distance fields to one shape: losses, the training loop (one shape or a
stacked batch), method presets, and fitting one shape file end to end.
"""
