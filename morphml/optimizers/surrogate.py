"""Surrogate-model search, MorphML's default: a Gaussian process guides a local search.

After `initial_samples` random architectures, every proposal fits a GP to the results (one-hot
encoding, plus BANANAS' path encoding on cell spaces) and ranks a pool of candidates by expected
improvement. The GP models the results' ranks as normal scores, not the raw scores, and the
incumbent is the told architecture the GP rates best, not the best single (noisy) result. While
the incumbent has untried neighbours, the pool is those neighbours: a hill climb that tries the
most promising step first rather than a random one (local search is strong on NAS benchmarks,
White et al. 2021). At a local optimum the pool widens to mutations of the best few architectures
plus random configs. Candidates still in flight count as observed at the model's own prediction
("kriging believer"), so a batch spreads out. bench/README.md ("Search quality") has the evidence.
"""

from __future__ import annotations

import json
from statistics import NormalDist
from typing import Any

import numpy as np

from morphml.architecture import Architecture
from morphml.optimizers._encoding import Array, Encoder
from morphml.optimizers._gp import GaussianProcess, expected_improvement
from morphml.optimizers._params import check_int
from morphml.optimizers._search import Record, SearchBase
from morphml.optimizers.base import Objective
from morphml.space.base import Space
from morphml.space.domains import Value

Config = dict[str, Value]
MAX_BUILDS = 50
_KEYS = json.JSONEncoder(sort_keys=True)
RETUNE_EVERY = 10


class SurrogateSearch(SearchBase):
    def __init__(
        self,
        space: Space,
        objectives: list[Objective],
        seed: int | None = None,
        initial_samples: int = 10,
        parents: int = 5,
        mutations: int = 30,
        random_pool: int = 200,
        max_points: int = 300,
        local: bool = True,
    ) -> None:
        for name, value, low in (
            ("initial_samples", initial_samples, 1),
            ("parents", parents, 1),
            ("mutations", mutations, 0),
            ("random_pool", random_pool, 0),
            ("max_points", max_points, 10),
        ):
            check_int(name, value, low)
        if not isinstance(local, bool):
            raise ValueError(f"local must be true or false, got {local!r}")
        super().__init__(space, objectives, seed)
        self.local = local
        self.initial_samples, self.parents, self.mutations = initial_samples, parents, mutations
        self.random_pool, self.max_points = random_pool, max_points
        self.encoder = Encoder(space)
        self.domains = space.variables()  # asked for thousands of times per proposal
        self.gp = GaussianProcess()
        self.tuned_at = -RETUNE_EVERY
        self.proposed: set[str] = set()  # config keys, so repeats are skipped without building
        self.rows: dict[str, Array] = {}  # hash -> encoded config of a told record (not state)

    def _propose(self) -> Architecture | None:
        told = self._training_set()
        if len(told) < self.initial_samples:
            return None
        x = self._encode_told(told)
        model = self._fit(x, normal_scores(np.array([r["score"] for r in told])))
        # The model's view of the told points, not their single noisy draws, says which is best:
        # a lucky draw of a mediocre cell neither anchors the climb nor sets the bar for EI.
        fitted = model.predict(x)[0]
        pool = self._pool([told[i] for i in np.argsort(-fitted, kind="stable")])
        if not pool:
            return None
        mean, std = model.predict(self.encoder.encode(pool))
        gain = expected_improvement(mean, std, float(fitted.max()))
        return self._first_new([pool[i] for i in np.argsort(-gain, kind="stable")])

    def _observe(self, record: Record) -> None:
        self.proposed.add(_key(record["config"]))

    def _training_set(self) -> list[Record]:
        told = self.completed()
        if len(told) <= self.max_points:
            return told
        # Keep the best half and the newest: the model matters most where the search is.
        best = sorted(told, key=lambda r: -r["score"])[: self.max_points // 2]
        kept = {id(r) for r in best}
        newest = [r for r in reversed(told) if id(r) not in kept][: self.max_points - len(best)]
        return best + newest

    def _fit(self, x: Array, y: Array) -> GaussianProcess:
        tune = len(self.completed()) >= self.tuned_at + RETUNE_EVERY
        if tune:
            self.tuned_at = len(self.completed())
        model = self.gp.fit(x, y, tune=tune)
        if not self.pending:
            return model
        # Kriging believer: in-flight candidates are taken to score what the model predicts.
        pending = self.encoder.encode(list(self.pending.values()))
        believed = model.predict(pending)[0]
        return GaussianProcess(model.length_scale, model.noise).fit(
            np.vstack([x, pending]), np.concatenate([y, believed])
        )

    def _encode_told(self, told: list[Record]) -> Array:
        """The training rows, each encoded once: re-encoding the whole training set on every
        proposal was a quarter of the default's time. Keyed by hash (told once each), and kept to
        the training set, so the cache stays as small as the model."""
        missing = [r for r in told if r["hash"] not in self.rows]
        if missing:
            encoded = self.encoder.encode([r["config"] for r in missing])
            self.rows.update(zip((r["hash"] for r in missing), encoded, strict=True))
        if len(self.rows) > 2 * self.max_points:
            wanted = {r["hash"] for r in told}
            self.rows = {h: row for h, row in self.rows.items() if h in wanted}
        return np.array([self.rows[r["hash"]] for r in told])

    def _pool(self, ranked: list[Record]) -> list[Config]:
        """Candidates to rank by EI, around `ranked` (the told records, the best first)."""
        best = ranked[: self.parents]
        if self.local:
            around_incumbent = self._neighbours(best[0]["config"])
            if around_incumbent:
                return list(around_incumbent.values())
        pool: dict[str, Config] = {}
        for record in best:
            config = record["config"]
            pool.update(self._neighbours(config))
            for _ in range(self.mutations):
                self._add(pool, self._mutated(self._mutated(config)))
        domains = sorted(self.domains.items())
        for _ in range(self.random_pool):
            self._add(pool, {key: domain.sample(self.rng) for key, domain in domains})
        return list(pool.values())

    def _neighbours(self, config: Config) -> dict[str, Config]:
        """Untried configs one variable step from `config`, by key."""
        domains, found = self.domains, dict[str, Config]()
        for key in sorted(k for k in config if k in domains):
            for value in domains[key].neighbours(config[key]):
                self._add(found, {**config, key: value})
        return found

    def _mutated(self, config: Config) -> Config:
        domains = self.domains
        keys = sorted(k for k in config if k in domains)
        key = keys[self.rng.randrange(len(keys))] if keys else None
        return config if key is None else {**config, key: domains[key].sample(self.rng)}

    def _add(self, pool: dict[str, Config], config: Config) -> None:
        key = _key(config)
        if key not in self.proposed:
            pool.setdefault(key, config)

    def _first_new(self, ranked: list[Config]) -> Architecture | None:
        for config in ranked[:MAX_BUILDS]:
            self.proposed.add(_key(config))
            architecture = self._try_build(config)
            if architecture is not None and self.is_new(architecture.hash):
                self.proposed.add(_key(architecture.config))
                return architecture
        return None

    def _try_build(self, config: Config) -> Architecture | None:
        try:
            return self.space.build_valid(config, self.rng)
        except ValueError:
            return None

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "proposed": sorted(self.proposed),
            "tuned_at": self.tuned_at,
            "gp": [self.gp.length_scale, self.gp.noise],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.proposed, self.tuned_at = set(state["proposed"]), int(state["tuned_at"])
        self.gp = GaussianProcess(*state["gp"])


def normal_scores(y: Array) -> Array:
    """Each value's rank as a standard normal quantile (ties share their mean rank).

    The GP models ranks, not raw scores: a search space's failures (10% accuracy beside 91%)
    would otherwise set the scale, and the few tenths that separate the cells near the top,
    where the search spends its time, would look like noise to the model."""
    order = np.argsort(y, kind="stable")
    ranks = np.empty(len(y))
    ranks[order] = np.arange(len(y), dtype=float)
    _, tie, counts = np.unique(y, return_inverse=True, return_counts=True)
    ranks = (np.bincount(tie, ranks) / counts)[tie]
    quantile = NormalDist().inv_cdf
    return np.array([quantile((rank + 0.5) / len(y)) for rank in ranks])


def _key(config: Config) -> str:
    return _KEYS.encode(config)  # json.dumps(config, sort_keys=True), less a new encoder per call
