"""Privacy engines: how the joint product Fᵀ·G is computed between the two parties."""
