"""The per-shape SDF methods by name, as `inr fit --method` and the benchmarks offer them.

Each method is a network kind plus the training settings it is fitted with by default. The
names are what users type; `method_overrides` gives the nested settings to lay over a
`PipelineConfig` (with `inrcore.settings.config_replace`), so a manifest or `--set` can still change
any of them.
"""

from __future__ import annotations

from typing import Mapping, Optional

from inrcore.settings import merge_overrides


# Learning rates: SIREN and IDF start at 2e-4 with a cosine decay to 2e-5 (the library default,
# near SIREN's 1e-4 and IDF's 5e-4 Adam rates). The IGR-loss networks (Softplus or ReLU, with
# the geometric initialisation) take the larger steps IGR trains with (Gropp et al. 2020 use
# 5e-3 for an 8x512 network; 1e-3 suits the library's 3x128 one).
_METHODS: dict[str, dict] = {
    "siren": {"training": {"network": {"kind": "siren"}}},
    "idf": {"training": {"network": {"kind": "idf"}}},
    "igr": {"training": {"network": {"kind": "igr"}, "lr": 1e-3, "lr_final": 1e-5}},
    "relu-pe": {"training": {"network": {"kind": "relu-pe"}, "lr": 1e-3, "lr_final": 1e-5}},
}
METHODS = tuple(_METHODS)


def method_overrides(method: str, overrides: Optional[Mapping] = None) -> dict:
    """Nested settings for `method`, with the caller's `overrides` laid over them (theirs win).

    Returns a fresh dict. Raises ValueError naming the known methods for an unknown one.
    """
    if method not in _METHODS:
        raise ValueError(f"unknown method {method!r}; known: {', '.join(METHODS)}")
    return merge_overrides(_METHODS[method], overrides or {})
