"""What each party learns in a run, as listed in the report (docs/privacy.md explains)."""

from __future__ import annotations

SEEN_BY_PARTY2 = {
    "clear": "party1's requests only; party2 sends its whole level image to party1 (no privacy)",
    "mpc": "uniformly random masked features (F − U); nothing about the moving image",
    "fhe1": "masked, noise-flooded decryptions of R + mask; nothing about the moving image",
    "fhe2": "masked, noise-flooded decryptions of R + mask; nothing about the moving image",
}


def revealed_quantities(metric: str, pet: str, sampling: str, result, bins: int) -> dict:
    """Counts of the values each party learns beyond its own input.

    ``result`` is a driver result with ``levels`` (records with ``n_samples`` and
    ``iterations``) and ``model`` (with ``n_params`` and ``dim``).
    """
    n_params, dim = result.model.n_params, result.model.dim
    levels = result.levels
    evaluations = sum(len(level.iterations) for level in levels)
    if metric == "ssd":
        per_evaluation = n_params + 1
        per_level = n_params * n_params + n_params + 1
        names = ["Σ I(W)·S (p values)", "Σ I(W)·J"]
        level_names = ["H = SᵀS", "SᵀJ", "ΣJ² over the samples"]
    else:
        per_evaluation = bins * bins + bins * dim * bins * (dim + 1)
        per_level = 0
        names = ["joint histogram P (B×B)", "its derivative D (B·d × B·(d+1))"]
        level_names = []
    to_party1 = {
        "per_evaluation": names,
        "per_level": level_names,
        "values_per_evaluation": per_evaluation,
        "values_total": per_evaluation * evaluations + per_level * len(levels),
        "fixed_grid_geometry": True,
    }
    if pet == "clear":
        to_party1["fixed_level_images"] = "the whole fixed image at every level (clear engine: no privacy)"
    to_party2 = {
        "engine_messages": SEEN_BY_PARTY2.get(pet, ""),
        "sample_indices": sampling != "all",
        "sample_indices_total": sum(level.n_samples for level in levels) if sampling != "all" else 0,
        "model_centre_and_scale": True,
    }
    return {"threat_model": "semi-honest parties, non-colluding dealer", "revealed_to_party1": to_party1,
            "revealed_to_party2": to_party2}


def pointcloud_revealed(pet: str, dim: int, count: int) -> dict:
    """What each party learns in a point-set registration (docs/privacy.md, ``ppreg pointcloud``)."""
    to_party1 = {
        "cross_covariance": "L = Σ x'·y'ᵀ of the centred points",
        "fixed_centroid": "ȳ (the translation needs it)",
        "fixed_sum_squared": "Σ‖y'‖² (the FRE and the --scaling factor need it)",
        "fixed_scale": "power of two ≥ max |y' coordinate| (operand normalisation)",
        "fixed_point_count": count,
        "values_total": dim * dim + dim + 2,
    }
    if pet == "clear":
        to_party1["fixed_points"] = "every fixed point (clear engine: no privacy)"
    to_party2 = {
        "engine_messages": SEEN_BY_PARTY2.get(pet, ""),
        "moving_point_count": count,
        "dimension": dim,
    }
    return {"threat_model": "semi-honest parties, non-colluding dealer", "revealed_to_party1": to_party1,
            "revealed_to_party2": to_party2}


def bspline_revealed(pet: str, sampling: str, result) -> dict:
    """Counts for a B-spline run: per evaluation Σ β_c·∇Ĩ_k·J (P·d values) and Σ I(W)·J;
    per level ΣJ² over the samples."""
    levels = result.levels
    to_party1 = {
        "per_evaluation": ["Σ β_c·∇Ĩ_k·J for every control point c and axis k", "Σ I(W)·J"],
        "per_level": ["ΣJ² over the samples"],
        "values_per_evaluation": [level.revealed_per_evaluation for level in levels],
        "values_total": sum(level.revealed_per_evaluation * len(level.iterations) for level in levels) + len(levels),
        "fixed_grid_geometry": True,
    }
    if pet == "clear":
        to_party1["fixed_level_images"] = "the whole fixed image at every level (clear engine: no privacy)"
    to_party2 = {
        "engine_messages": SEEN_BY_PARTY2.get(pet, ""),
        "sample_indices": sampling != "all",
        "control_grid_geometry": True,
    }
    return {"threat_model": "semi-honest parties, non-colluding dealer", "revealed_to_party1": to_party1,
            "revealed_to_party2": to_party2}

