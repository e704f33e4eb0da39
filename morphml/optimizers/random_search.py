"""Random search: independent uniform samples of the space, never the same architecture twice."""

from __future__ import annotations

from morphml.optimizers._search import SearchBase, check_ask
from morphml.optimizers._state import draw_many_new
from morphml.optimizers.base import Candidate


class RandomSearch(SearchBase):
    """Samples uniformly: SearchBase draws at random whenever `_propose` has no opinion, which
    here is always; `ask` returns fewer than n candidates once the space is exhausted.

    Its state is the RNG and the candidates in flight, whatever the length of the run: results
    teach it nothing, and after a reload `known` says which architectures were proposed."""

    persist_seen = False
    persist_history = False

    def ask(self, n: int = 1) -> list[Candidate]:
        # Every candidate is a random draw, so `known` can answer for a whole round at once.
        check_ask(n)
        return [self._asked(a) for a in draw_many_new(self.space, self.rng, n, self.unseen)]
