"""Errors raised for bad input: each message names the file (or config key) and the problem."""

from __future__ import annotations


class InrflowError(Exception):
    """Base class of the errors inrflow raises on purpose."""


class ShapeError(InrflowError, ValueError):
    """A shape file cannot be used: missing, empty, not a mesh, NaN vertices, no faces...

    The message always starts with the file's path, then the problem.
    """

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):  # keep (path, problem) across process boundaries (Dask workers)
        return (type(self), (self.path, self.problem))


class SceneError(ShapeError):
    """A scene of posed images cannot be used: a missing or malformed transforms file, a bad pose,
    a missing image or one of the wrong size, no focal length...

    The message always starts with the offending file's path, then the problem.
    """


class ConfigError(InrflowError, ValueError):
    """A configuration or manifest is invalid. The message names the source and the key."""
