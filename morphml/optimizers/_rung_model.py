"""BOHB-style proposals for ASHA and Hyperband: MorphML's GP surrogate fitted on one rung.

Falkner et al. 2018 (BOHB) model the largest budget that already holds enough results, because
the highest fidelity ranks architectures most like the final training does, and propose at
random until such a budget exists. We keep that rule but reuse MorphML's default surrogate (the
GP of _gp.py on the encoding of _encoding.py) instead of BOHB's kernel density estimate, and rank
a pool by expected improvement: the one-step neighbours and a few mutations of the rung's best
architectures, plus random configs. The neighbours matter: with mutations and random configs
alone, EI kept choosing far-away configs for their uncertainty (a small pool holds too few
promising near ones), and the search did worse than random proposals.

The fitted GP is cached only as a shortcut: it is a function of the rung's results and of the
hyperparameters kept in the state, so a reloaded optimizer refits exactly the same model.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import numpy as np

from morphml.architecture import Architecture
from morphml.optimizers._encoding import Encoder
from morphml.optimizers._gp import GaussianProcess, expected_improvement
from morphml.space.base import Space
from morphml.space.domains import Value

Config = dict[str, Value]
Rung = dict[str, dict[str, Any]]  # hash -> {"config": Config, "score": float | None}

POOL_PARENTS = 5  # best architectures of the rung whose neighbours and mutations join the pool
POOL_MUTATIONS = 6  # per parent, besides its neighbours
POOL_RANDOM = 50
MAX_POINTS = 200  # the GP's training set at most: cubic cost, and a huge bottom rung is cheap
MAX_BUILDS = 50  # pool entries tried in EI order before giving up to a random draw
RETUNE_EVERY = 10  # new results on the modelled rung between hyperparameter searches


class RungModel:
    """Proposes a new architecture by expected improvement on the highest rung with at least
    `min_points` results; None while no rung has them (the caller then draws at random)."""

    def __init__(self, space: Space, min_points: int) -> None:
        self.space, self.min_points = space, min_points
        self.encoder = Encoder(space)
        self.gp = GaussianProcess()
        self.rung, self.tuned_at = -1, 0  # where and at how many points the GP was last tuned
        self._fitted: tuple[Any, ...] | None = None  # what self.gp is fitted on, if anything
        # Config keys of every told architecture, gathered from the rungs as they grow: such a
        # config rebuilds an architecture `is_new` refuses, so skipping it before the (costly)
        # build changes nothing but the time. Not state: the rungs give it back after a reload.
        self._told: set[str] = set()
        self._indexed: list[int] = []

    def propose(
        self, rungs: list[Rung], rng: random.Random, is_new: Callable[[str], bool]
    ) -> Architecture | None:
        rung = self._modelled_rung(rungs)
        if rung is None:
            return None
        told = _training_set(rungs[rung])
        self._fit(rung, told)
        self._index(rungs)
        pool = [c for c in _pool(self.space, told, rng) if _key(c) not in self._told]
        if not pool:
            return None
        mean, std = self.gp.predict(self.encoder.encode(pool))
        gain = expected_improvement(mean, std, max(score for _, score in told))
        for index in np.argsort(-gain, kind="stable")[:MAX_BUILDS]:
            architecture = _try_build(self.space, pool[index], rng)
            if architecture is not None and is_new(architecture.hash):
                return architecture
        return None

    def _index(self, rungs: list[Rung]) -> None:
        self._indexed += [0] * (len(rungs) - len(self._indexed))
        for rung, entries in enumerate(rungs):
            for entry in list(entries.values())[self._indexed[rung] :]:
                self._told.add(_key(entry["config"]))
            self._indexed[rung] = len(entries)

    def _modelled_rung(self, rungs: list[Rung]) -> int | None:
        for rung in range(len(rungs) - 1, -1, -1):
            scored = sum(1 for entry in rungs[rung].values() if entry["score"] is not None)
            if scored >= self.min_points:
                return rung
        return None

    def _fit(self, rung: int, told: list[tuple[Config, float]]) -> None:
        scores = tuple(score for _, score in told)
        tune = rung != self.rung or len(told) >= self.tuned_at + RETUNE_EVERY
        key = (rung, scores, self.gp.length_scale, self.gp.noise)
        if not tune and key == self._fitted:
            return
        if tune:
            self.rung, self.tuned_at = rung, len(told)
        x = self.encoder.encode([config for config, _ in told])
        self.gp.fit(x, np.array(scores), tune=tune)
        self._fitted = (rung, scores, self.gp.length_scale, self.gp.noise)

    def state(self) -> list[Any]:
        return [self.rung, self.tuned_at, self.gp.length_scale, self.gp.noise]

    def load(self, state: list[Any]) -> None:
        rung, tuned_at, length_scale, noise = state
        self.rung, self.tuned_at = int(rung), int(tuned_at)
        self.gp = GaussianProcess(float(length_scale), float(noise))
        self._fitted, self._told, self._indexed = None, set(), []


def _training_set(rung: Rung) -> list[tuple[Config, float]]:
    """The rung's scored results; past MAX_POINTS, the best half and the newest (as
    SurrogateSearch keeps them: the model matters most where the search is)."""
    told = [(e["config"], float(e["score"])) for e in rung.values() if e["score"] is not None]
    if len(told) <= MAX_POINTS:
        return told
    order = sorted(range(len(told)), key=lambda i: -told[i][1])[: MAX_POINTS // 2]
    kept = set(order)
    newest = [i for i in range(len(told) - 1, -1, -1) if i not in kept]
    return [told[i] for i in sorted(order + newest[: MAX_POINTS - len(order)])]


def _pool(space: Space, told: list[tuple[Config, float]], rng: random.Random) -> list[Config]:
    domains = sorted(space.variables().items())
    pool: dict[str, Config] = {}
    for config, _ in sorted(told, key=lambda item: -item[1])[:POOL_PARENTS]:
        for key, domain in domains:
            for value in domain.neighbours(config[key]) if key in config else ():
                _add(pool, {**config, key: value})
        for _ in range(POOL_MUTATIONS):
            _add(pool, _mutated(_mutated(config, domains, rng), domains, rng))
    for _ in range(POOL_RANDOM):
        _add(pool, {key: domain.sample(rng) for key, domain in domains})
    return list(pool.values())


def _mutated(config: Config, domains: list[tuple[str, Any]], rng: random.Random) -> Config:
    """`config` with one variable resampled (configs of spaces without variables stay put)."""
    present = [(key, domain) for key, domain in domains if key in config]
    if not present:
        return config
    key, domain = present[rng.randrange(len(present))]
    return {**config, key: domain.sample(rng)}


def _add(pool: dict[str, Config], config: Config) -> None:
    pool.setdefault(_key(config), config)


def _key(config: Config) -> str:
    return json.dumps(config, sort_keys=True)


def _try_build(space: Space, config: Config, rng: random.Random) -> Architecture | None:
    try:
        return space.build_valid(config, rng)
    except ValueError:
        return None
