"""Deterministic baselines that the SRVAE's super-resolution is measured against (not part of the model)."""
