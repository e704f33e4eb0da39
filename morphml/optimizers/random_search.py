"""Random search: independent uniform samples of the space, never the same architecture twice."""

from __future__ import annotations

from morphml.optimizers._search import SearchBase


class RandomSearch(SearchBase):
    """Samples uniformly: SearchBase draws at random whenever `_propose` has no opinion, which
    here is always; `ask` returns fewer than n candidates once the space is exhausted.

    Its state is the RNG and the candidates in flight, whatever the length of the run: results
    teach it nothing, and after a reload `known` says which architectures were proposed."""

    persist_seen = False
    persist_history = False
