"""Differential evolution (Storn & Price 1997, DE/best/1/bin or DE/rand/1/bin), asynchronous
and steady-state.

The population is `population_size` told results, each in a slot; until it is full, proposals
are random. Each proposal takes the next slot's member as its target (round-robin) and three
other distinct members a, b, c, builds the mutant a + F (b - c) and crosses it with the target:
each variable comes from the mutant with probability `crossover_rate`, and at least one does.
When the trial's result arrives it takes its target's slot if it scores at least as well (DE's
greedy selection); failed and pruned trials never do. A random proposal (made when no new trial
was found) has no target: it takes the worst slot on the same terms. Slots, the trials in
flight and their targets are all the state the algorithm needs, so it stays the same size.

`strategy` picks the base a: "best/1" (the default) the best member other than the target,
"rand/1" a random one; b and c are always random. With greedy one-to-one selection, DE/rand/1
keeps the population diverse but climbs slowly: on NAS-Bench-201 CIFAR-10 (bench/
search_quality.py, seeds 0-19) it reached 91.15 after 100 evaluations where regularized
evolution reached 91.42 (sequential; 8 in flight 91.14 and 91.35); DE/best/1 reached 91.37 and
91.41, level with it. A NAS budget of a hundred or so evaluations leaves DE/rand/1 four
generations, too few for its diversity to pay.

Variables are mutated by type:

* numeric ranges on their line (log ranges in log space) scaled to [0, 1]: a + F (b - c),
  clipped to [0, 1], then rounded for ints;
* choices (the only variables of a NAS-Bench-201 cell) by the discrete analogue of the same
  rule: where b and c agree their difference is zero and the mutant keeps a's option; where
  they differ, with probability F it takes another option at random. Mapping options to
  numbers (DEHB's rule) would invent an order among unordered ops (is "skip" between "none"
  and "conv"?) and move by it; this rule keeps DE's defining property instead: steps are as
  large as the population is diverse, and vanish as it converges.

A variable a lacks (inactive in a, e.g. the units of a dense layer a left out) is left out of
the mutant; a variable the trial lacks is sampled when the space builds it. A trial whose shapes
do not flow counts as one of the proposal's tries (`build`, not `build_valid`: a complete config
that fails would fail all of `build_valid`'s 200 attempts alike).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from morphml.architecture import Architecture
from morphml.optimizers._numeric import from_unit, to_unit
from morphml.optimizers._params import check_int, check_rate
from morphml.optimizers._search import Record, SearchBase
from morphml.optimizers.base import Objective
from morphml.space.base import Space
from morphml.space.domains import Choice, Domain, Value

Config = dict[str, Value]
# Trials tried per proposal before giving up to a random draw: a converged population breeds
# mostly known architectures.
TRIAL_TRIES = 10
STRATEGIES = ("best/1", "rand/1")


class DifferentialEvolution(SearchBase):
    persist_seen = False
    persist_history = False

    def __init__(
        self,
        space: Space,
        objectives: list[Objective],
        seed: int | None = None,
        population_size: int = 20,
        mutation_factor: float = 0.5,
        crossover_rate: float = 0.5,
        strategy: str = "best/1",
    ) -> None:
        check_int("population_size", population_size, 4, 10**6)  # a target and three others
        check_factor(mutation_factor)
        check_rate("crossover_rate", crossover_rate)
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {list(STRATEGIES)}, got {strategy!r}")
        super().__init__(space, objectives, seed)
        self.population_size = population_size
        self.mutation_factor = float(mutation_factor)
        self.crossover_rate = float(crossover_rate)
        self.strategy = strategy
        self.domains = sorted(space.variables().items())
        self.population: list[Record] = []  # slots, filled in the order results arrive
        self.targets: dict[str, int] = {}  # trial hash -> its target's slot, while in flight
        self.next_target = 0

    def _propose(self) -> Architecture | None:
        if len(self.population) < self.population_size:
            return None
        target = self.next_target
        self.next_target = (target + 1) % self.population_size
        for _ in range(TRIAL_TRIES):
            trial = self._trial(target)
            if trial is not None and self.is_new(trial.hash):
                self.targets[trial.hash] = target
                return trial
        return None

    def _trial(self, target: int) -> Architecture | None:
        a, b, c = (self.population[slot]["config"] for slot in self.parents(target))
        mutant = mutate(self.domains, a, b, c, self.mutation_factor, self.rng)
        config = crossover(self.population[target]["config"], mutant, self.crossover_rate, self.rng)
        if any(config == member["config"] for member in self.population):
            return None  # a member, so not new: skip the build and hash (milliseconds on a cell)
        try:
            return self.space.build(config, self.rng)
        except ValueError:  # its shapes do not flow
            return None

    def parents(self, target: int) -> tuple[int, int, int]:
        """The slots of a, b and c: distinct, none of them the target's."""
        others = [slot for slot in range(len(self.population)) if slot != target]
        if self.strategy == "rand/1":
            a, b, c = self.rng.sample(others, 3)
            return a, b, c
        best = max(others, key=lambda slot: self.population[slot]["score"])  # ties: the first
        b, c = self.rng.sample([slot for slot in others if slot != best], 2)
        return best, b, c

    def _observe(self, record: Record) -> None:
        target = self.targets.pop(record["hash"], None)
        if record["score"] is None:
            return
        kept = {"config": record["config"], "hash": record["hash"], "score": record["score"]}
        if len(self.population) < self.population_size:
            self.population.append(kept)
            return
        if target is None or target >= len(self.population):
            target = min(range(len(self.population)), key=lambda s: self.population[s]["score"])
        if record["score"] >= self.population[target]["score"]:
            self.population[target] = kept

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "population": self.population,
            "targets": self.targets,
            "next_target": self.next_target,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.population = [dict(record) for record in state["population"]]
        self.targets = {key: int(slot) for key, slot in state["targets"].items()}
        self.next_target = int(state["next_target"]) % self.population_size
        self.seen.update(record["hash"] for record in self.population)


def mutate(
    domains: Sequence[tuple[str, Domain]],
    a: Config,
    b: Config,
    c: Config,
    factor: float,
    rng: random.Random,
) -> Config:
    """The mutant a + F (b - c), variable by variable (see the module docstring)."""
    mutant: Config = {}
    for key, domain in domains:
        if key not in a:
            continue
        if key not in b or key not in c or b[key] == c[key]:
            mutant[key] = a[key]
        elif isinstance(domain, Choice):
            others = [option for option in domain.options if option != a[key]]
            draw = rng.random()
            mutant[key] = others[rng.randrange(len(others))] if draw < factor and others else a[key]
        else:
            unit = to_unit(domain, a[key]) + factor * (
                to_unit(domain, b[key]) - to_unit(domain, c[key])
            )
            mutant[key] = from_unit(domain, min(1.0, max(0.0, unit)))
    return mutant


def crossover(target: Config, mutant: Config, rate: float, rng: random.Random) -> Config:
    """Binomial crossover: each variable from the mutant with probability `rate`, else from the
    target; one variable the mutant holds, drawn at random, always comes from the mutant."""
    keys = sorted(target.keys() | mutant.keys())
    held = [key for key in keys if key in mutant]
    forced = held[rng.randrange(len(held))] if held else None
    trial: Config = {}
    for key in keys:
        source = mutant if key == forced or rng.random() < rate else target
        if key in source:
            trial[key] = source[key]
    return trial


def check_factor(value: Any) -> float:
    """The scale factor F: DE's usual range is (0, 2]; 0 would make every mutant a copy of a."""
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 < value <= 2:
        raise ValueError(f"mutation_factor must be in (0, 2], got {value!r}")
    return float(value)
