"""Differential energy debugging: match two programs by the values they compute, compare region by region.

``fingerprint`` (layout-invariant value signatures), ``flow`` (the dataflow view),
``pairing`` (values across programs), ``dominators`` (cut points), ``match``
(regions), ``region_replay`` (energy of a region in context), ``verdict``,
``settings`` (global torch settings per side), ``knobs`` (configuration
diagnosis), ``outputs`` (same-computation check), ``engine`` (the whole diff).
"""
