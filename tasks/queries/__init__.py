"""Query stages on fitted fields: range-bound meshing and iso-points."""
