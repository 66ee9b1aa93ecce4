"""Settings of a field's network (the kinds `inrcore.fields.build` makes)."""

from __future__ import annotations

from typing import Annotated, Literal, Optional

from inrcore.settings import (
    Count,
    CountOrZero,
    Flag,
    Integer,
    Number,
    PositiveNumber,
    SettingError,
    positive_or_null,
    settings_class,
)


@settings_class
class NetworkConfig:
    """The field's network: `layers` hidden layers of `width` units.

    kind "siren": sin(omega (W x + b)) layers, SIREN initialisation, fitted with the SIREN loss.
    kind "igr": Softplus(beta) MLP with the input re-injected at the middle layer and the
    geometric initialisation to a sphere of `radius`, fitted with the IGR loss.
    kind "relu-pe": the same with ReLU and a Fourier encoding of `frequencies` octaves.
    kind "idf": an implicit displacement field (Wang Yifan et al. 2022, `inrcore.fields.idf`): a base
    SIREN f of `layers` x `width` displaced along its normals by a SIREN d, fitted with the SIREN
    loss on the composed field after a base-only stage. Its settings (defaults from the authors'
    reconstruction experiment in github.com/yifita/idf):
      idf_omega_base: ω of every sine layer of the base (15).
      idf_omega_displacement: ω of every sine layer of the displacement network (60).
      idf_displacement_width, idf_displacement_layers: its size; None: the base's width / layers.
      idf_nu: width ν of the attenuation χ(f) = 1 / (1 + (f/ν)^4) (0.05).
      idf_max_displacement: bound of the displacement, max · tanh(.) (0.05).
      idf_base_fraction: training progress before which the base trains alone (0.2).
      idf_blend_end: progress by which loss and learning rates have moved from the base to the
        composed field; the base is frozen from then on (0.5).
      idf_detach_normal: use the base normal and χ as constants inside the composition when
        training, as the authors' code does (cheaper: no second derivatives of f in ∇f̂).
    """

    kind: Literal["siren", "igr", "relu-pe", "idf"] = "siren"
    width: Count = 128
    layers: Count = 3
    omega_first: Number = 30.0
    omega_hidden: Number = 30.0
    beta: Number = 100.0
    frequencies: CountOrZero = 6
    radius: Number = 0.5
    idf_omega_base: PositiveNumber = 15.0
    idf_omega_displacement: PositiveNumber = 60.0
    idf_displacement_width: Annotated[Optional[Integer], positive_or_null()] = None
    idf_displacement_layers: Annotated[Optional[Integer], positive_or_null()] = None
    idf_nu: PositiveNumber = 0.05
    idf_max_displacement: PositiveNumber = 0.05
    idf_base_fraction: Number = 0.2
    idf_blend_end: Number = 0.5
    idf_detach_normal: Flag = True

    def __post_init__(self):
        if not 0.0 <= self.idf_base_fraction <= self.idf_blend_end <= 1.0:
            raise SettingError("idf_base_fraction, idf_blend_end",
                               f"need 0 <= idf_base_fraction <= idf_blend_end <= 1, got {self.idf_base_fraction} "
                               f"and {self.idf_blend_end}")
        if self.kind in ("igr", "relu-pe") and self.layers >= 2:
            # The layer before the skip connection outputs width - (encoded input) units, so the
            # concatenation is `width` wide again: the width must exceed the encoded input.
            encoded = 3 + (6 * self.frequencies if self.kind == "relu-pe" else 0)
            if self.width <= encoded:
                raise SettingError("width", f"{self.kind} with {self.layers} layers needs width above the encoded "
                                            f"input's {encoded} features (skip connection), got {self.width}")
