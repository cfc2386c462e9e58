"""Pyramids, interpolation, transforms and sampling: the math each party runs locally."""
