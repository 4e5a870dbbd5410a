"""BVH writer read back with real parsers (bvhio, bvh), exact header and frame count,
channel orders, crash safety (killed writer), live TCP stream."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from trackside.bvh.parser import read_bvh
from trackside.bvh.stream import BvhStreamServer, read_stream_lines
from trackside.bvh.writer import BvhWriter, bvh_frames, bvh_header, dfs_segments, write_bvh
from trackside.kinematics.joints import bvh_rotations
from trackside.kinematics.skeleton import Skeleton
from trackside.sim.athlete import SimulatedAthlete

bvhio = pytest.importorskip("bvhio")
bvh = pytest.importorskip("bvh")

EXPECTED_NAMES = ["Hips", "Spine", "Head", "LeftArm", "LeftForeArm", "LeftHand", "RightArm", "RightForeArm",
                  "RightHand", "LeftUpLeg", "LeftLeg", "LeftFoot", "RightUpLeg", "RightLeg", "RightFoot"]


@pytest.fixture(scope="module")
def motion():
    return SimulatedAthlete(heading_deg=20.0, stand_s=0.5, blend_s=0.5).simulate(duration_s=3.0, fs=100.0)


def _angle_deg(q_glm, m):
    r = Rotation.from_quat([q_glm.x, q_glm.y, q_glm.z, q_glm.w])
    return np.degrees((r * Rotation.from_matrix(m).inv()).magnitude())


@pytest.mark.parametrize("order", ["ZXY", "YXZ"])
def test_file_reads_back_with_bvhio_and_bvh(tmp_path, motion, order):
    path = tmp_path / "run.bvh"
    root = motion.segment_pos["pelvis"]
    n = write_bvh(path, motion.skeleton, motion.segment_quats, 100.0, root, order=order)
    assert n == len(motion.time_s)
    text = path.read_text()
    header = bvh_header(motion.skeleton, 0.01, order, n)
    assert text.startswith(header)  # exact header, exact count
    assert f"Frames: {n}" in text and "Frame Time: 0.01000000" in text
    assert len(text[len(header):].strip().splitlines()) == n
    assert f"CHANNELS 6 Xposition Yposition Zposition {' '.join(a + 'rotation' for a in order)}" in text

    mats = bvh_rotations(motion.segment_quats, motion.skeleton)
    # bvhio: rotations as quaternions
    c = bvhio.readAsBvh(str(path))
    assert c.FrameCount == n and c.FrameTime == pytest.approx(0.01)
    joints = [j for j, _, _ in c.Root.layout()]
    assert [j.Name for j in joints] == EXPECTED_NAMES
    seg_of = {s.bvh_name: s.name for s in motion.skeleton.segments}
    worst = 0.0
    for j in joints:
        m = mats[seg_of[j.Name]]
        for k in range(0, n, 7):
            worst = max(worst, _angle_deg(j.Keyframes[k].Rotation, m[k]))
    assert worst < 0.01
    pos = np.array([[kf.Position.x, kf.Position.y, kf.Position.z] for kf in c.Root.Keyframes])
    assert np.allclose(pos / 100.0, root[:, [1, 2, 0]], atol=1e-4)  # BVH X north, Y up, Z east

    # bvh package: raw channels, reconstructed with the declared order
    b = bvh.Bvh(text)
    assert b.nframes == n and b.frame_time == pytest.approx(0.01)
    assert b.get_joints_names() == EXPECTED_NAMES
    chans = [a + "rotation" for a in order]
    for name in ("LeftLeg", "RightUpLeg", "Hips", "LeftForeArm"):
        vals = np.array(b.frames_joint_channels(name, chans))
        r = Rotation.from_euler(order, vals, degrees=True)
        err = np.degrees((r * Rotation.from_matrix(mats[seg_of[name]]).inv()).magnitude())
        assert err.max() < 0.01
    # our own reader agrees on the hierarchy
    clip = read_bvh(path)
    assert [j.name for j in clip.joints] == EXPECTED_NAMES and clip.motion.shape == (n, 48)


def test_header_offsets_and_bad_input(tmp_path, motion):
    sk = motion.skeleton
    h = bvh_header(sk, 1 / 200)
    assert h.splitlines()[1] == "ROOT Hips"
    # left thigh hangs below the hips, to the left (+X in BVH)
    clip_like = read_bvh_text(h)
    off = {j.name: j.offset for j in clip_like.joints}
    assert off["LeftUpLeg"][0] > 0 and off["RightUpLeg"][0] < 0 and off["LeftLeg"][1] < 0
    assert off["LeftLeg"][1] == pytest.approx(-100 * sk.segment("left_thigh").length_m)
    assert dfs_segments(sk) == sk.names()
    with pytest.raises(ValueError):
        bvh_header(sk, 0.0)
    with pytest.raises(ValueError):
        bvh_header(sk, 0.01, order="XXY")
    with BvhWriter(tmp_path / "w.bvh", sk, 0.01) as w:
        with pytest.raises(ValueError):
            w.write_frame(np.zeros(5))
        with pytest.raises(ValueError):
            w.write_frames(np.full((2, 48), np.nan))
    with pytest.raises(ValueError):
        bvh_frames(sk, motion.segment_quats, np.zeros((3, 3)))


def read_bvh_text(header: str):
    from trackside.bvh.parser import parse_bvh

    return parse_bvh(header)


def test_killed_recording_leaves_a_readable_file(tmp_path):
    path = tmp_path / "live.bvh"
    code = textwrap.dedent(f"""
        import sys, time
        import numpy as np
        from trackside.bvh.writer import BvhWriter
        from trackside.kinematics.skeleton import Skeleton
        w = BvhWriter({str(path)!r}, Skeleton.from_height(1.8), frame_time=0.01, flush_every=10)
        k = 0
        while True:
            w.write_frame(np.full(48, float(k % 90)))
            k += 1
            if k == 200:
                print("ready", flush=True)
            time.sleep(0.0005)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=10)
    c = bvhio.readAsBvh(str(path))
    assert c.FrameCount >= 200 and c.FrameCount % 10 == 0
    lines = path.read_text().split("Frame Time: 0.01000000\n")[1].split("\n")
    assert len([ln for ln in lines if ln]) >= c.FrameCount
    b = bvh.Bvh(path.read_text())
    assert b.nframes == c.FrameCount
    vals = [float(b.frames[k][10]) for k in range(b.nframes)]
    assert vals == [float(k % 90) for k in range(b.nframes)]


def test_live_stream_one_frame_per_line(motion):
    sk = motion.skeleton
    frames = bvh_frames(sk, motion.segment_quats, motion.segment_pos["pelvis"])[:50]
    header = bvh_header(sk, 0.01)
    got: list = []
    with BvhStreamServer(header=header, send_header=True) as srv:
        t = threading.Thread(target=lambda: got.extend(read_stream_lines(srv.port, header.count("\n") + 50)))
        t.start()
        assert srv.wait_for_clients(1, timeout_s=5)
        for f in frames[:25]:
            assert srv.send_frame(f) == 1
        assert srv.play(frames[25:], fs=1000.0) == 25
        t.join(timeout=10)
    head_lines = header.count("\n")
    assert "\n".join(got[:head_lines]) + "\n" == header
    rows = np.array([[float(x) for x in ln.split()] for ln in got[head_lines:]])
    assert rows.shape == (50, 48) and np.allclose(rows, frames, atol=1e-4)
    with pytest.raises(ValueError):
        BvhStreamServer(host="0.0.0.0")
    Skeleton.from_height(1.8)
