"""Exercise library: session categories tagged by ability area.

Each category has the ability area it trains (``area``), how much it transfers to each area
(``transfer``, primary 1.0 or less plus secondary effects) and the band of average heart rate,
as heart-rate-reserve fractions, at which such a session is normally done (``band``).  The band
is intersected with the athlete's safe and effective interval; a category whose intersection is
empty is left out of that athlete's plans.
"""

from __future__ import annotations

from dataclasses import dataclass

from trackside.plan.athlete import AREAS

__all__ = ["Category", "LIBRARY"]


@dataclass(frozen=True)
class Category:
    """One kind of session."""

    name: str
    area: str
    band: tuple[float, float]
    transfer: dict

    def transfer_vector(self) -> list[float]:
        return [float(self.transfer.get(a, 0.0)) for a in AREAS]


LIBRARY: tuple[Category, ...] = (
    Category("acceleration sprints", "speed", (0.55, 0.85), {"speed": 1.0, "jumping": 0.3}),
    Category("max-velocity sprints", "speed", (0.60, 0.90), {"speed": 1.0, "strength": 0.2}),
    Category("plyometrics", "jumping", (0.50, 0.80), {"jumping": 1.0, "speed": 0.3}),
    Category("bounding and hops", "jumping", (0.55, 0.85), {"jumping": 0.9, "strength": 0.3}),
    Category("maximal strength (weights)", "strength", (0.40, 0.70), {"strength": 1.0, "jumping": 0.2}),
    Category("throws and medicine ball", "strength", (0.45, 0.75), {"strength": 0.8, "speed": 0.2}),
    Category("tempo runs", "endurance", (0.60, 0.80), {"endurance": 1.0}),
    Category("intervals", "endurance", (0.75, 0.95), {"endurance": 1.0, "speed": 0.2}),
    Category("easy continuous run", "endurance", (0.50, 0.70), {"endurance": 0.7}),
    Category("mobility and flexibility", "flexibility", (0.30, 0.60), {"flexibility": 1.0}),
    Category("hurdle mobility circuit", "flexibility", (0.50, 0.70), {"flexibility": 0.7, "endurance": 0.3}),
)

for _c in LIBRARY:  # guard against typos in the table above
    assert _c.area in AREAS and set(_c.transfer) <= set(AREAS), _c
