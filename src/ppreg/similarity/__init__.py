"""Similarity metrics split into a moving side (party1) and a fixed side (party2).

Each metric's only joint quantity is a product ``Fᵀ·G`` where F (N × m) is computed
by party1 from the warped moving image and G (N × q) by party2 from the fixed image;
a privacy engine computes it (secure/).
"""
