"""Origin split of batches: post-consumer, pre-consumer and primary shares.

The default method is proportional (controlled blending at batch level, ISO 22095): the
material of a transform's outputs takes the origin split of the pooled inputs, for the total
mass and per element. An element's share is ``None`` (unknown) where it would have to be
guessed: an input without a composition whose share differs from the others'. An element
that no input contains is left out of the output's split (not present is not the same as
unknown). The method is a class so that a site-level mass-balance (credit) method can be
added beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

ORIGINS = ("post_consumer", "pre_consumer", "primary")
# CRMA Art. 29(1): the elements whose post-consumer share must be published.
CRMA_ELEMENTS = ("Nd", "Pr", "Dy", "Tb", "B", "Sm", "Ni", "Co")

Share = dict[str, float]
OriginSplit = dict[str, Any]  # {"mass": Share, "elements": {element: Share | None}}


@dataclass(frozen=True)
class Contribution:
    """What one input brings to a transform: grams consumed, its composition and origin."""

    mass_g: int
    composition: dict[str, int] | None
    origin: OriginSplit


def _pure(origin: str) -> Share:
    return {o: (1.0 if o == origin else 0.0) for o in ORIGINS}


def _pool(weighted: Sequence[tuple[float, Share]]) -> Share | None:
    total = sum(weight for weight, _ in weighted)
    if total <= 0:
        return None
    return {o: round(sum(w * share[o] for w, share in weighted) / total, 9) for o in ORIGINS}


class ProportionalMethod:
    """Controlled blending at batch level: outputs inherit the pooled inputs' split."""

    name = "proportional"

    def intake(self, origin: str) -> OriginSplit:
        """A batch entering the chain is wholly of its declared origin, every element too."""
        return {"mass": _pure(origin), "elements": {e: _pure(origin) for e in CRMA_ELEMENTS}}

    def blend(self, inputs: Sequence[Contribution]) -> OriginSplit:
        """The split of any output of a transform with these inputs."""
        mass = _pool([(c.mass_g, c.origin["mass"]) for c in inputs])
        elements: dict[str, Share | None] = {}
        for element in CRMA_ELEMENTS:
            shares = [c.origin["elements"].get(element) for c in inputs]
            if any(s is None for s in shares):
                # An unknown share upstream is only harmless where that input adds no grams.
                shares_known = all(
                    s is not None or (c.composition is not None and c.composition.get(element, 0) == 0)
                    for s, c in zip(shares, inputs, strict=True)
                )
                if not shares_known:
                    elements[element] = None
                    continue
            if all(c.composition is not None for c in inputs):
                weighted = [
                    (c.mass_g * c.composition.get(element, 0), c.origin["elements"][element])
                    for c in inputs
                    if c.composition is not None and c.composition.get(element, 0) > 0
                ]
                if not weighted:
                    continue  # no input contains the element: not present, rather than unknown
                elements[element] = _pool(weighted)
            else:
                # Without every composition the weights are unknown; the result is still
                # exact when all inputs carry the same split.
                elements[element] = _same_or_none(shares)
        return {"mass": mass, "elements": elements}


def _same_or_none(shares: Sequence[Share | None]) -> Share | None:
    known = [s for s in shares if s is not None]
    if known and all(s == known[0] for s in known) and len(known) == len(shares):
        return dict(known[0])
    return None


METHOD = ProportionalMethod()
