"""Measurement: energy backends, the energy pass, statistics and the allocator policy."""
