"""Body model: segments rooted at the pelvis, lengths from height, node-to-segment assignment.

Segment frames (all segments, this whole package): x anterior (forward), y left, z up (along
the segment) *in the standing calibration pose*. So in that pose every
segment frame equals the athlete's heading frame and every joint rotation is the identity,
which is what makes clinical angles zero when standing.

Lengths default to the anthropometric ratios of Drillis & Contini (1966) as tabulated by
D. A. Winter, *Biomechanics and Motor Control of Human Movement*, 4th ed. (2009), Fig. 4.1
(fractions of body height H): ankle height 0.039, knee 0.285, hip 0.530, shoulder 0.818,
shoulder width 0.259, hip width 0.191, upper arm 0.186, forearm 0.146, hand 0.108,
foot length 0.152. Splits the table does not give (pelvis vs thorax share of the 0.288 H trunk,
hip-joint spacing as half the hip width) are our choices and are named in ``RATIOS``.

Example::

    sk = Skeleton.from_height(1.80, lengths={"thigh": 0.46})
    sk.segment("left_shank").length_m
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

__all__ = ["RATIOS", "SEGMENT_NAMES", "LEG_SEGMENTS", "Segment", "Skeleton", "assign_nodes"]

#: Length keys and their fraction of body height (see module docstring).
RATIOS: dict[str, float] = {
    "ankle_height": 0.039,
    "shank": 0.285 - 0.039,
    "thigh": 0.530 - 0.285,
    "pelvis": 0.100,          # hip-joint centre to lumbar joint (our split of the trunk)
    "thorax": 0.818 - 0.630,  # lumbar joint to shoulder level
    "head": 1.0 - 0.818,      # shoulder level (neck base) to vertex
    "shoulder_width": 0.259,
    "hip_width": 0.191 / 2,   # hip-joint centre spacing, half the trochanter width (our choice)
    "upper_arm": 0.186,
    "forearm": 0.146,
    "hand": 0.108,
    "foot": 0.152,
}

SEGMENT_NAMES: tuple[str, ...] = (
    "pelvis", "thorax", "head",
    "left_upper_arm", "left_forearm", "left_hand",
    "right_upper_arm", "right_forearm", "right_hand",
    "left_thigh", "left_shank", "left_foot",
    "right_thigh", "right_shank", "right_foot",
)

LEG_SEGMENTS = ("thigh", "shank", "foot")

_PARENT = {
    "pelvis": None, "thorax": "pelvis", "head": "thorax",
    "left_upper_arm": "thorax", "left_forearm": "left_upper_arm", "left_hand": "left_forearm",
    "right_upper_arm": "thorax", "right_forearm": "right_upper_arm", "right_hand": "right_forearm",
    "left_thigh": "pelvis", "left_shank": "left_thigh", "left_foot": "left_shank",
    "right_thigh": "pelvis", "right_shank": "right_thigh", "right_foot": "right_shank",
}

_BVH_NAME = {
    "pelvis": "Hips", "thorax": "Spine", "head": "Head",
    "left_upper_arm": "LeftArm", "left_forearm": "LeftForeArm", "left_hand": "LeftHand",
    "right_upper_arm": "RightArm", "right_forearm": "RightForeArm", "right_hand": "RightHand",
    "left_thigh": "LeftUpLeg", "left_shank": "LeftLeg", "left_foot": "LeftFoot",
    "right_thigh": "RightUpLeg", "right_shank": "RightLeg", "right_foot": "RightFoot",
}


@dataclass(frozen=True)
class Segment:
    """One rigid segment.

    ``offset_m``: its origin (proximal joint) in the parent's frame, standing pose.
    ``end_m``: its distal end in its own frame (the BVH End Site / child joint direction).
    """

    name: str
    parent: str | None
    offset_m: tuple[float, float, float]
    end_m: tuple[float, float, float]
    bvh_name: str

    @property
    def length_m(self) -> float:
        return float(np.linalg.norm(self.end_m))


@dataclass
class Skeleton:
    """Ordered segments (parents before children), pelvis first."""

    height_m: float
    lengths_m: dict[str, float]
    segments: list[Segment] = field(default_factory=list)

    @classmethod
    def from_height(cls, height_m: float, lengths: Mapping[str, float] | None = None) -> "Skeleton":
        """Skeleton for an athlete of ``height_m``; ``lengths`` overrides any ``RATIOS`` key in metres."""
        if not (0.5 <= float(height_m) <= 2.6):
            raise ValueError(f"height_m must be between 0.5 and 2.6 m, got {height_m!r}")
        L = {k: r * float(height_m) for k, r in RATIOS.items()}
        for k, v in (lengths or {}).items():
            if k not in RATIOS:
                raise ValueError(f"unknown length {k!r}; known: {', '.join(sorted(RATIOS))}")
            if not (0.0 < float(v) < 2.0):
                raise ValueError(f"length {k!r} must be in (0, 2) m, got {v!r}")
            L[k] = float(v)
        sk = cls(float(height_m), L)
        sk.segments = _build(L)
        return sk

    def names(self) -> list[str]:
        return [s.name for s in self.segments]

    def segment(self, name: str) -> Segment:
        for s in self.segments:
            if s.name == name:
                return s
        raise KeyError(f"no segment {name!r}; known: {', '.join(self.names())}")

    def children(self, name: str) -> list[Segment]:
        return [s for s in self.segments if s.parent == name]

    @property
    def pelvis_height_m(self) -> float:
        """Height of the pelvis origin (hip-joint centres) above the ground when standing."""
        return self.lengths_m["ankle_height"] + self.lengths_m["shank"] + self.lengths_m["thigh"]

    def standing_positions(self) -> dict[str, np.ndarray]:
        """Segment origins in the heading frame (pelvis origin at ground level + pelvis height)."""
        pos: dict[str, np.ndarray] = {}
        for s in self.segments:
            base = np.zeros(3) if s.parent is None else pos[s.parent]
            if s.parent is None:
                pos[s.name] = np.array([0.0, 0.0, self.pelvis_height_m])
            else:
                pos[s.name] = base + np.asarray(s.offset_m)
        return pos


def _build(L: dict[str, float]) -> list[Segment]:
    hw = L["hip_width"] / 2
    sw = L["shoulder_width"] / 2
    segs = [
        Segment("pelvis", None, (0, 0, 0), (0, 0, L["pelvis"]), "Hips"),
        Segment("thorax", "pelvis", (0, 0, L["pelvis"]), (0, 0, L["thorax"]), "Spine"),
        Segment("head", "thorax", (0, 0, L["thorax"]), (0, 0, L["head"]), "Head"),
    ]
    for side, sgn in (("left", 1.0), ("right", -1.0)):
        segs += [
            Segment(f"{side}_upper_arm", "thorax", (0, sgn * sw, L["thorax"]), (0, 0, -L["upper_arm"]),
                    _BVH_NAME[f"{side}_upper_arm"]),
            Segment(f"{side}_forearm", f"{side}_upper_arm", (0, 0, -L["upper_arm"]), (0, 0, -L["forearm"]),
                    _BVH_NAME[f"{side}_forearm"]),
            Segment(f"{side}_hand", f"{side}_forearm", (0, 0, -L["forearm"]), (0, 0, -L["hand"]),
                    _BVH_NAME[f"{side}_hand"]),
        ]
    for side, sgn in (("left", 1.0), ("right", -1.0)):
        segs += [
            Segment(f"{side}_thigh", "pelvis", (0, sgn * hw, 0), (0, 0, -L["thigh"]), _BVH_NAME[f"{side}_thigh"]),
            Segment(f"{side}_shank", f"{side}_thigh", (0, 0, -L["thigh"]), (0, 0, -L["shank"]),
                    _BVH_NAME[f"{side}_shank"]),
            # ankle to toe tip: 3/4 of the foot length ahead of the ankle, down to the ground
            Segment(f"{side}_foot", f"{side}_shank", (0, 0, -L["shank"]), (0.75 * L["foot"], 0, -L["ankle_height"]),
                    _BVH_NAME[f"{side}_foot"]),
        ]
    return segs


def assign_nodes(assignment: Mapping[str, str], skeleton: Skeleton | None = None) -> dict[str, str]:
    """Validate a node-id -> segment-name map: known segments, one node per segment.

    Returns a plain dict. Raises ``ValueError`` naming the offending entry.
    """
    known = set(skeleton.names() if skeleton else SEGMENT_NAMES)
    out: dict[str, str] = {}
    seen: dict[str, str] = {}
    for node, seg in assignment.items():
        if seg not in known:
            raise ValueError(f"node {node!r}: unknown segment {seg!r}; known: {', '.join(sorted(known))}")
        if seg in seen:
            raise ValueError(f"segment {seg!r} assigned to two nodes: {seen[seg]!r} and {node!r}")
        seen[seg] = str(node)
        out[str(node)] = seg
    return out
