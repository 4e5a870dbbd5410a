"""Small BVH reader: hierarchy, channels and motion as arrays (used to drive simulations).

``read_bvh(path) -> BvhClip``; ``clip.local_rotations()`` gives per-joint local rotations and
``clip.forward_kinematics()`` global rotations and positions (in the file's units and axes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

__all__ = ["BvhJoint", "BvhClip", "read_bvh", "parse_bvh"]


@dataclass
class BvhJoint:
    name: str
    parent: int  # index, -1 for the root
    offset: np.ndarray
    channels: list[str]
    channel_start: int
    end_site: np.ndarray | None = None
    children: list[int] = field(default_factory=list)


@dataclass
class BvhClip:
    joints: list[BvhJoint]
    frame_time: float
    motion: np.ndarray  # frames x channels

    def index(self, name: str) -> int:
        for i, j in enumerate(self.joints):
            if j.name == name:
                return i
        raise KeyError(f"no joint {name!r} in the clip")

    def local_rotations(self) -> list[Rotation]:
        """Per joint, the local rotation at each frame (channel order as in the file, intrinsic)."""
        out = []
        n = len(self.motion)
        for j in self.joints:
            rot_ch = [c for c in j.channels if c.endswith("rotation")]
            if not rot_ch:
                out.append(Rotation.identity(n))
                continue
            cols = [j.channel_start + j.channels.index(c) for c in rot_ch]
            seq = "".join(c[0].upper() for c in rot_ch)
            out.append(Rotation.from_euler(seq, self.motion[:, cols], degrees=True))
        return out

    def root_position(self) -> np.ndarray:
        j = self.joints[0]
        pos = np.tile(j.offset, (len(self.motion), 1)).astype(float)
        for k, ax in enumerate("XYZ"):
            c = ax + "position"
            if c in j.channels:
                pos[:, k] = self.motion[:, j.channel_start + j.channels.index(c)]
        return pos

    def forward_kinematics(self, local: list[Rotation] | None = None, root_pos: np.ndarray | None = None):
        """Global rotations (list of Rotation) and joint positions (frames x joints x 3)."""
        local = local if local is not None else self.local_rotations()
        root_pos = root_pos if root_pos is not None else self.root_position()
        n = len(root_pos)
        glob: list[Rotation] = []
        pos = np.zeros((n, len(self.joints), 3))
        for i, j in enumerate(self.joints):
            if j.parent < 0:
                glob.append(local[i])
                pos[:, i] = root_pos
            else:
                glob.append(glob[j.parent] * local[i])
                pos[:, i] = pos[:, j.parent] + glob[j.parent].apply(j.offset)
        return glob, pos


def read_bvh(path: str | Path) -> BvhClip:
    """Parse a BVH file; raises ``ValueError`` with the line number on malformed input."""
    return parse_bvh(Path(path).read_text())


def parse_bvh(text: str) -> BvhClip:
    lines = text.splitlines()
    tokens = [(ln + 1, ln_text.split()) for ln, ln_text in enumerate(lines) if ln_text.strip()]
    joints: list[BvhJoint] = []
    stack: list[int] = []
    k = 0
    nch = 0
    pending_end = False

    def err(msg: str, ln: int) -> ValueError:
        return ValueError(f"BVH line {ln}: {msg}")

    if not tokens or tokens[0][1][0] != "HIERARCHY":
        raise err("expected HIERARCHY", tokens[0][0] if tokens else 1)
    k = 1
    while k < len(tokens):
        ln, tk = tokens[k]
        key = tk[0]
        if key in ("ROOT", "JOINT"):
            if len(tk) < 2:
                raise err("joint without a name", ln)
            parent = stack[-1] if stack else -1
            if key == "JOINT" and parent < 0:
                raise err("JOINT outside ROOT", ln)
            joints.append(BvhJoint(tk[1], parent, np.zeros(3), [], nch))
            if parent >= 0:
                joints[parent].children.append(len(joints) - 1)
            stack.append(len(joints) - 1)
            pending_end = False
        elif key == "End":
            pending_end = True
        elif key == "OFFSET":
            try:
                off = np.array([float(x) for x in tk[1:4]])
            except ValueError:
                raise err("bad OFFSET", ln) from None
            if off.shape != (3,):
                raise err("OFFSET needs 3 numbers", ln)
            if pending_end:
                joints[stack[-1]].end_site = off
            else:
                joints[stack[-1]].offset = off
        elif key == "CHANNELS":
            try:
                cnt = int(tk[1])
            except (ValueError, IndexError):
                raise err("bad CHANNELS", ln) from None
            chans = tk[2:2 + cnt]
            if len(chans) != cnt:
                raise err("CHANNELS count mismatch", ln)
            j = joints[stack[-1]]
            j.channels = chans
            j.channel_start = nch
            nch += cnt
        elif key == "{":
            pass
        elif key == "}":
            if pending_end:
                pending_end = False
            elif stack:
                stack.pop()
            else:
                raise err("unbalanced }", ln)
        elif key == "MOTION":
            break
        else:
            raise err(f"unexpected {key!r}", ln)
        k += 1
    if k >= len(tokens) or not joints:
        raise ValueError("BVH: no MOTION section or no joints")
    try:
        n_frames = int(tokens[k + 1][1][1])
        frame_time = float(tokens[k + 2][1][2])
    except (IndexError, ValueError):
        raise ValueError("BVH: bad 'Frames:'/'Frame Time:' lines") from None
    rows = tokens[k + 3:k + 3 + n_frames]
    if len(rows) < n_frames:
        raise ValueError(f"BVH: header says {n_frames} frames, file has {len(rows)}")
    try:
        if n_frames == 0:
            motion = np.zeros((0, nch))
        else:
            motion = np.array([[float(x) for x in r[1]] for r in rows], dtype=float).reshape(n_frames, -1)
    except ValueError:
        raise ValueError("BVH: motion rows must be numbers, one row of equal length per frame") from None
    if motion.shape[1] != nch:
        raise ValueError(f"BVH: {motion.shape[1]} values per frame, hierarchy has {nch} channels")
    return BvhClip(joints, frame_time, motion)
