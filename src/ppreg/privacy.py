"""What each party learns in a run, as listed in the report (docs/privacy.md explains).

Every model's ``privacy`` section has the same keys: ``threat_model``, ``revealed_to_party1``
(joint-term outputs per evaluation and per level with their counts, the σ of
``--reveal-noise``, and what the engine's messages carry), ``revealed_to_party2`` and
``revealed_to_dealer``.
"""

from __future__ import annotations

THREAT_MODEL = ("semi-honest parties, non-colluding dealer, mutual TLS 1.3 against network attackers "
                "(docs/privacy.md)")

SEEN_BY_PARTY2 = {
    "clear": "party1's requests only; party2 sends its whole level image to party1 (no privacy)",
    "mpc": "uniformly random masked features (F − U); nothing about the moving image",
    "fhe1": "the c1 polynomial of a re-randomised CKKS ciphertext of the result (uniform without party1's c0); "
            "nothing about the moving image",
    "fhe2": "the c1 polynomials of re-randomised CKKS ciphertexts of the result (uniform without party1's c0), "
            "one per evaluation (B-spline: one per class block and plane, one for ΣI(W)·J); "
            "nothing about the moving image",
}

SEEN_BY_PARTY1 = {
    "clear": "party2's whole level image (or point set) in the clear: no privacy",
    "mpc": "per level the masked operand G̃ − V (uniform ring elements) and a power-of-two bound on |G|; "
           "per evaluation the dealer's and party2's shares of the selected entries, which add up to them",
    "fhe1": "the public CKKS context and Galois keys (no secret key), G encrypted once per level, and "
            "noise-flooded decryption shares of the selected entries",
    "fhe2": "the public CKKS context (no secret key, no Galois keys), G encrypted once per level, and "
            "noise-flooded decryption shares of the selected entries",
}

SEEN_BY_DEALER = {
    "mpc": "session id, level geometry (grid, row count, control grid), product shapes, counters and "
           "selection patterns; sample indices only for the B-spline, whose public sparsity pattern the dealer "
           "derives from them (URS/GMS indices there depend on party1's sampling); never image values",
}


def _dealer(pet: str) -> dict:
    return {"present": pet in SEEN_BY_DEALER, "sees": SEEN_BY_DEALER.get(pet, "no dealer in this engine")}


def _to_party1(pet: str, per_evaluation: list[str], per_level: list[str], values_per_evaluation,
               values_per_level: int, evaluations: int, levels: int, values_total: int, reveal_noise: float) -> dict:
    to_party1 = {
        "per_evaluation": per_evaluation,
        "per_level": per_level,
        "values_per_evaluation": values_per_evaluation,
        "values_per_level": values_per_level,
        "evaluations": evaluations,
        "levels": levels,
        "values_total": values_total,
        "reveal_noise": {"sigma": reveal_noise,
                         "applies_to": "per-evaluation values" if reveal_noise > 0 else "nothing (exact values)"},
        "engine_messages": SEEN_BY_PARTY1.get(pet, ""),
        "fixed_grid_geometry": True,
    }
    if pet == "clear":
        to_party1["fixed_level_images"] = "the whole fixed image at every level (clear engine: no privacy)"
    return to_party1


def _samples_to_party2(sampling: str, levels) -> dict:
    sampled = sampling != "all"
    return {"sample_indices": sampled,
            "sample_indices_total": sum(level.n_samples for level in levels) if sampled else 0}


def revealed_quantities(metric: str, pet: str, sampling: str, result, bins: int, reveal_noise: float = 0.0) -> dict:
    """Counts of the values each party learns beyond its own input (``ppreg affine``).

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
    to_party1 = _to_party1(pet, names, level_names, per_evaluation, per_level, evaluations, len(levels),
                           per_evaluation * evaluations + per_level * len(levels), reveal_noise)
    to_party2 = {
        "engine_messages": SEEN_BY_PARTY2.get(pet, ""),
        **_samples_to_party2(sampling, levels),
        "model_centre_and_scale": True,
    }
    return {"threat_model": THREAT_MODEL, "revealed_to_party1": to_party1, "revealed_to_party2": to_party2,
            "revealed_to_dealer": _dealer(pet)}


def pointcloud_revealed(pet: str, dim: int, count: int) -> dict:
    """What each party learns in a point-set registration (docs/privacy.md, ``ppreg pointcloud``)."""
    to_party1 = {
        "cross_covariance": "L = Σ x'·y'ᵀ of the centred points",
        "fixed_centroid": "ȳ (the translation needs it)",
        "fixed_sum_squared": "Σ‖y'‖² (the FRE and the --scaling factor need it)",
        "fixed_scale": "power of two ≥ max |y' coordinate| (operand normalisation)",
        "fixed_point_count": count,
        "values_per_evaluation": dim * dim,
        "evaluations": 1,
        "values_total": dim * dim + dim + 2,
        "reveal_noise": {"sigma": 0.0, "applies_to": "nothing (exact values)"},
        "engine_messages": SEEN_BY_PARTY1.get(pet, ""),
    }
    if pet == "clear":
        to_party1["fixed_points"] = "every fixed point (clear engine: no privacy)"
    to_party2 = {
        "engine_messages": SEEN_BY_PARTY2.get(pet, ""),
        "moving_point_count": count,
        "dimension": dim,
    }
    return {"threat_model": THREAT_MODEL, "revealed_to_party1": to_party1, "revealed_to_party2": to_party2,
            "revealed_to_dealer": _dealer(pet)}


def bspline_revealed(pet: str, sampling: str, result, reveal_noise: float = 0.0) -> dict:
    """Counts for a B-spline run: per evaluation Σ β_c·∇Ĩ_k·J (P·d values) and Σ I(W)·J;
    per level ΣJ² over the samples."""
    levels = result.levels
    evaluations = sum(len(level.iterations) for level in levels)
    to_party1 = _to_party1(
        pet, ["Σ β_c·∇Ĩ_k·J for every control point c and axis k", "Σ I(W)·J"], ["ΣJ² over the samples"],
        [level.revealed_per_evaluation for level in levels], 1, evaluations, len(levels),
        sum(level.revealed_per_evaluation * len(level.iterations) for level in levels) + len(levels), reveal_noise)
    to_party2 = {
        "engine_messages": SEEN_BY_PARTY2.get(pet, ""),
        **_samples_to_party2(sampling, levels),
        "control_grid_geometry": True,
    }
    return {"threat_model": THREAT_MODEL, "revealed_to_party1": to_party1, "revealed_to_party2": to_party2,
            "revealed_to_dealer": _dealer(pet)}
