"""Every kind of field by name: building one from its settings, and its JSON description both ways.

The one place that knows all field kinds (plain layer lists and the composite ones), so that
`networks` and `idf` need not know each other.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Union

import torch

from inrcore.fields.idf import IDF_KIND, IdfSpec, idf_spec_from_dict, init_idf_params
from inrcore.fields.networks import (
    CompositeField,
    FieldSpec,
    igr_spec,
    init_geometric_params,
    init_siren_params,
    siren_spec,
    spec_from_list,
    spec_to_list,
)
from inrcore.fields.settings import NetworkConfig


# Each composite field kind and how its JSON description is read back.
COMPOSITE_READERS: dict[str, Callable[[Mapping[str, Any]], CompositeField]] = {IDF_KIND: idf_spec_from_dict}


def field_spec_to_json(spec: FieldSpec) -> Union[list[dict], dict]:
    """JSON-ready form of any field spec: a layer list for a network, `spec.to_dict()` (a dict
    with a "kind") for a composite field such as an IDF."""
    if isinstance(spec, CompositeField):
        return spec.to_dict()
    return spec_to_list(spec)


def field_spec_from_json(data: Union[list[dict], Mapping[str, Any]]) -> FieldSpec:
    """Inverse of `field_spec_to_json`; raises ValueError on an unknown layer or field kind."""
    if isinstance(data, Mapping):
        read = COMPOSITE_READERS.get(data.get("kind"))
        if read is None:
            known = ", ".join(repr(k) for k in COMPOSITE_READERS)
            raise ValueError(f"unknown field kind {data.get('kind')!r}; known: {known} or a layer list")
        return read(data)
    return spec_from_list(data)


def idf_spec_for(config: NetworkConfig) -> IdfSpec:
    """The IDF `config` describes: a base SIREN of `layers` x `width` with ω = idf_omega_base on
    every sine layer, a displacement SIREN of idf_displacement_layers x idf_displacement_width
    (default: the base's) with ω = idf_omega_displacement, and idf_nu, idf_max_displacement."""
    base = siren_spec(config.width, config.layers, config.idf_omega_base, config.idf_omega_base)
    displacement = siren_spec(config.idf_displacement_width or config.width,
                              config.idf_displacement_layers or config.layers,
                              config.idf_omega_displacement, config.idf_omega_displacement)
    return IdfSpec(base=base, displacement=displacement, nu=config.idf_nu,
                   max_displacement=config.idf_max_displacement)


def network_for(config: NetworkConfig, generator: torch.Generator) -> tuple[FieldSpec, dict[str, torch.Tensor]]:
    """The spec (a layer list, or an IdfSpec for kind "idf") and initial parameters of the field `config` describes."""
    if config.kind == "idf":
        spec = idf_spec_for(config)
        return spec, init_idf_params(spec, generator)
    if config.kind == "siren":
        spec = siren_spec(config.width, config.layers, config.omega_first, config.omega_hidden)
        return spec, init_siren_params(spec, generator)
    if config.kind in ("igr", "relu-pe"):
        spec = igr_spec(config.width, config.layers,
                        activation="softplus" if config.kind == "igr" else "relu", beta=config.beta,
                        frequencies=config.frequencies if config.kind == "relu-pe" else 0)
        return spec, init_geometric_params(spec, config.radius, generator)
    raise ValueError(f"unknown network kind {config.kind!r}")
