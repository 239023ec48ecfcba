"""The report: built from a graph and its measurements, rendered to terminal and JSON."""
