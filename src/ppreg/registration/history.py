"""Per-iteration records shared by every driver (metric, time and traffic)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ppreg.secure.session import Traffic


@dataclass
class IterationRecord:
    level: int
    metric: float
    seconds: float
    traffic: Traffic
    accepted: bool = True


@dataclass
class LevelRecord:
    index: int
    shrink: int
    sigma: float
    n_samples: int
    setup_seconds: float
    setup_traffic: Traffic
    iterations: list[IterationRecord] = field(default_factory=list)
    revealed_per_evaluation: int = 0  # joint-term values party1 learns per evaluation

    def as_dict(self) -> dict:
        return {
            "index": self.index,
            "shrink": self.shrink,
            "sigma_vox": self.sigma,
            "samples": self.n_samples,
            "iterations": len(self.iterations),
            "setup_seconds": self.setup_seconds,
            "setup_bytes": self.setup_traffic.as_dict(),
            "metric": [record.metric for record in self.iterations],
        }


class LevelHistory:
    """Mixin for driver results holding ``levels`` (list of LevelRecord): first and last cost."""

    levels: list[LevelRecord]

    @property
    def metric_initial(self) -> float:
        return self.levels[0].iterations[0].metric

    @property
    def metric_final(self) -> float:
        return self.levels[-1].iterations[-1].metric
