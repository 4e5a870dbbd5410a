#!/usr/bin/env python3
"""Wire-protocol benchmark: bytes per sample on realistic motion, link capacity, encode cost on
the node (MicroPython wasm, with pystone in the same run -> ESP32 estimate), host decode speed,
and an optional long fuzz run.

    python3 tools/bench/bench_wire.py                 # everything except the long fuzz
    python3 tools/bench/bench_wire.py --fuzz 1000000  # + 1,000,000 corrupted frames
    python3 tools/bench/bench_wire.py --quick         # fewer data, for a smoke run

Data (read from ../shared beside the repo; skipped if absent):
  * BROAD (Laidig et al., Data 2021, CC-BY-4.0): the 7 trials, resampled 2000/7 Hz -> 200 Hz
    (scipy resample_poly 7/10, anti-aliased as a sensor's DLPF would), quantised to MPU-9250
    counts, MPU-9250 datasheet noise added on top of the recorded noise (conservative).
  * Running: the CMU mocap running clips 09_02 / 09_05 (mocap.cs.cmu.edu; funded by NSF
    EIA-0196217), every body segment (15) through trackside.sim.bvh_motion, and a simulated
    sprint (trackside.sim.athlete) -- ideal IMU signals + MPU-9250 noise, quantised.
  Quaternion: VQF 9D (vqf 2.1.2, online) on the float signals, in Q14 -- stands in for the
  node's filter output. Magnetometer: AK8963 at 100 Hz, held between its samples.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO / "shared"))

from tsproto import FrameWriter, SampleBatcher, StreamDecoder  # noqa: E402
from tsproto.consts import MAX_FRAME  # noqa: E402

FS = 200.0
UART_BPS = 921600
# MPU-9250 datasheet noise densities (accel 300 ug/sqrt(Hz), gyro 0.01 dps/sqrt(Hz)) over a
# ~100 Hz bandwidth; AK8963 ~0.3 uT rms
ACC_NOISE_G = 300e-6 * 10.0
GYR_NOISE_DPS = 0.01 * 10.0
MAG_NOISE_UT = 0.3


def quantise(acc, gyr, mag, quat, acc_range_g=16, gyr_range_dps=2000, seed=0):
    """float IMU signals (m/s^2, rad/s, uT, quat) -> (N, 13) int16 counts as on an MPU-9250."""
    rng = np.random.default_rng(seed)
    n = len(acc)
    acc_g = acc / 9.80665 + rng.normal(0, ACC_NOISE_G, (n, 3))
    gyr_d = np.degrees(gyr) + rng.normal(0, GYR_NOISE_DPS, (n, 3))
    mag_u = mag + rng.normal(0, MAG_NOISE_UT, (n, 3))
    a = np.round(acc_g * (32768 / acc_range_g))
    g = np.round(gyr_d * (32768 / gyr_range_dps))
    m = np.round(mag_u / 0.15)
    m[1::2] = m[0::2][: len(m[1::2])]  # AK8963 at 100 Hz under 200 Hz samples: held
    q = np.round(np.asarray(quat) * 16384)
    out = np.concatenate([a, g, m, q], axis=1)
    return np.clip(out, -32768, 32767).astype(np.int16)


def vqf_quat(gyr, acc, mag):
    import vqf

    f = vqf.VQF(1.0 / FS)
    res = f.updateBatch(np.ascontiguousarray(gyr, float), np.ascontiguousarray(acc, float),
                        np.ascontiguousarray(mag, float))
    return res["quat9D"]


def broad_sets(quick, acc_range_g):
    from scipy.signal import resample_poly

    d = SHARED / "broad"
    if not d.exists():
        return {}
    out = {}
    for k, p in enumerate(sorted(d.glob("*.npz"))):
        z = np.load(p)
        sig = {key: resample_poly(np.asarray(z[key], float), 7, 10, axis=0) for key in ("acc", "gyr", "mag")}
        if quick:
            sig = {key: v[:6000] for key, v in sig.items()}
        q = vqf_quat(sig["gyr"], sig["acc"], sig["mag"])
        out["broad/" + p.stem[:2]] = quantise(sig["acc"], sig["gyr"], sig["mag"], q, acc_range_g, seed=k)
    return out


def running_sets(quick, acc_range_g):
    sys.path.insert(0, str(REPO / "host"))
    try:
        from trackside.sim.athlete import SimulatedAthlete
        from trackside.sim.bvh_motion import BvhMotion
    except ImportError as e:  # pragma: no cover
        print("running data unavailable:", e)
        return {}
    dur = 8.0 if quick else 20.0
    motions = {}
    for clip in ("09_02", "09_05"):
        p = SHARED / "mocap" / (clip + ".bvh")
        if p.exists():
            motions["run" + clip] = BvhMotion(p).simulate(duration_s=dur, fs=FS)
    motions["sprint"] = SimulatedAthlete.sprint(seed=1).simulate(duration_s=dur, fs=FS)
    out = {}
    k = 100
    for name, mo in motions.items():
        segs = ["left_shank", "left_foot", "pelvis"] if quick else list(mo.segment_quats)
        for seg in segs:
            imu = mo.imu(seg)
            q = vqf_quat(imu["gyr"], imu["acc"], imu["mag"])
            out[name + "/" + seg] = quantise(imu["acc"], imu["gyr"], imu["mag"], q, acc_range_g, seed=k)
            k += 1
    return out


def encode(rows, spf, node_id=1, raw=False):
    """Wire bytes of rows (N x 13 int16) through the firmware's SampleBatcher (CPython)."""
    enc = SampleBatcher(FrameWriter(node_id), spf, 5000, raw=raw)
    out = bytearray()
    nframes = 0
    for k, r in enumerate(rows.tolist()):
        if enc.add(1000 + 5000 * k, r[:9] if raw else r):
            out += enc.frame()
            nframes += 1
    if enc.flush():
        out += enc.frame()
        nframes += 1
    return bytes(out), nframes


def bytes_per_sample(sets, spf_list, raw=False):
    """{spf: (bytes/sample over all sets, samples per frame, per-set figures)}"""
    res = {}
    for spf in spf_list:
        tot_b = tot_n = tot_f = 0
        per = {}
        for name, rows in sets.items():
            b, nf = encode(rows, spf, raw=raw)
            per[name] = len(b) / len(rows)
            tot_b += len(b)
            tot_n += len(rows)
            tot_f += nf
        res[spf] = (tot_b / tot_n, tot_n / tot_f, per, tot_b)
    return res


def capacity(bps_sample, spm):
    """Nodes at 200 Hz that fit a 921600-baud UART and one ESP-NOW gateway (airtime model)."""
    uart_Bps = UART_BPS / 10  # 8N1
    uart_nodes = uart_Bps / (bps_sample * FS)
    msg_bytes = min(MAX_FRAME, bps_sample * spm)
    # ESP-NOW airtime per message: vendor action frame (~43 B MAC/IE overhead + payload), ACK,
    # SIFS, DIFS, mean backoff. 802.11b 1 Mbps long preamble (ESP-NOW default) and 802.11g 6 Mbps.
    t1 = 192 + (msg_bytes + 43) * 8 / 1.0 + 10 + (192 + 112) + 50 + 310
    t6 = 20 + 4 * np.ceil((16 + 6 + 8 * (msg_bytes + 43)) / 24) + 10 + 44 + 28 + 67
    msgs_per_node = FS / spm
    return uart_nodes, 1e6 / t1 / msgs_per_node, 1e6 / t6 / msgs_per_node, msg_bytes


WASM_CODE = r"""
import sys, time
from array import array
from tsproto.batch import SampleBatcher
from tsproto.frame import FrameWriter
from pystone_mp import pystones
try:
    import hostio
    now = hostio.now_us
except ImportError:
    now = time.ticks_us
data = array('h', bytearray(open('/data/rows.bin', 'rb').read()))
n = len(data) // 13
spf = int(sys.argv[1])
rounds = int(sys.argv[2])
s = array('h', [0] * 13)
def copy_only(n):
    for k in range(n):
        b = k * 13
        for i in range(13):
            s[i] = data[b + i]
def with_encode(n, fetch):
    enc = SampleBatcher(FrameWriter(1), spf, 5000)
    add = enc.add
    nb = 0
    for k in range(n):
        b = k * 13
        for i in range(13):
            s[i] = data[b + i]
        if add(k * 5000, s) and fetch:
            nb += len(enc.frame())
    return nb
with_encode(n // 4, True)  # warm up
for r in range(rounds):
    st = pystones(5000)[1]
    t0 = now(); copy_only(n); t1 = now(); nb = with_encode(n, True); t2 = now()
    with_encode(n, False); t3 = now()
    st2 = pystones(5000)[1]
    print(n, t1 - t0, t2 - t1, t3 - t2, nb, (st + st2) / 2)
"""


def wasm_encode_cost(rows, spf, rounds):
    """Per round: (n, copy_us, add+frame us, add-only us, bytes, pystones/s around it)."""
    from trackside import mpy

    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "rows.bin"
        f.write_bytes(np.ascontiguousarray(rows, "<i2").tobytes())
        res = mpy.run(WASM_CODE, files=[(f, "/data/rows.bin"), (REPO / "tools/bench/pystone_mp.py", "/lib/pystone_mp.py")],
                      argv=[str(spf), str(rounds)], timeout=1800)
    return [tuple(float(x) for x in line.split()) for line in res.text.strip().splitlines()]


def host_decode_speed(wire, nsamples, fast):
    """(samples per CPU second, samples per wall second), best of 5 runs."""
    best_cpu = best_wall = 1e9
    for _ in range(5 if fast else 2):
        t0, c0 = time.perf_counter(), time.process_time()
        if fast:
            from tsproto.fast import decode

            got = len(decode(wire))
        else:
            dec = StreamDecoder()
            got = sum(len(m.samples) for m in dec.feed(wire) if hasattr(m, "samples"))
        best_cpu = min(best_cpu, time.process_time() - c0)
        best_wall = min(best_wall, time.perf_counter() - t0)
        assert got == nsamples, (got, nsamples)
    return nsamples / best_cpu, nsamples / best_wall


def fuzz(nframes, seed=1, fast=False):
    """Corrupt a stream of nframes frames (bit flips, inserted garbage, deletions, cut frames)
    and decode it in random chunks: returns (exceptions, frames in, good frames out, stats)."""
    from tsproto.fast import FastDecoder

    rnd = random.Random(seed)
    rows = np.array([[rnd.randint(-3000, 3000) for _ in range(13)] for _ in range(64)], np.int16)
    base_frames = []
    for spf in (1, 4, 16, 40):
        enc = SampleBatcher(FrameWriter(2), spf, 5000)
        for k, r in enumerate(rows.tolist()):
            if enc.add(k, r):
                base_frames.append(bytes(enc.frame()))
    w = FrameWriter(3)
    base_frames += [w.hello(0, 200, 8, 2000, 4912, 1, 1, "1", "x"), w.status(0, 1, 2, 3, 4, 5, 6, 7),
                    w.log(0, 20, "hi"), w.command(0, 3, (200,))[0], w.timesync_reply(0, 1, 2, 3, 4)]
    dec = FastDecoder() if fast else StreamDecoder()
    exceptions = 0
    sent = 0
    out = 0
    intact = 0
    t0 = time.perf_counter()
    while sent < nframes:
        buf = bytearray()
        for _ in range(2000 if fast else 200):
            f = bytearray(rnd.choice(base_frames))
            op = rnd.random()
            if op < 0.15:
                f[rnd.randrange(len(f))] ^= 1 << rnd.randrange(8)
            elif op < 0.25:
                p = rnd.randrange(len(f))
                f[p:p] = os.urandom(rnd.randrange(1, 30))
            elif op < 0.35:
                p = rnd.randrange(len(f))
                del f[p : p + rnd.randrange(1, 30)]
            elif op < 0.40:
                f = f[: rnd.randrange(len(f))]
            else:
                intact += 1
            buf += f
            sent += 1
        k = 0
        while k < len(buf):
            c = rnd.randrange(1, 30000 if fast else 600)  # numpy pays per call: bigger chunks
            try:
                r = dec.feed(bytes(buf[k : k + c]))
                out += len(r.frame_n) + len(r.messages) if fast else len(r)
            except Exception:  # the point of the run: this must never happen
                exceptions += 1
            k += c
    return exceptions, sent, out, intact, dec.stats(), time.perf_counter() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="less data (smoke run)")
    ap.add_argument("--no-wasm", action="store_true", help="skip the MicroPython encode-cost run")
    ap.add_argument("--fuzz", type=int, default=0, help="number of corrupted frames to decode")
    ap.add_argument("--acc-range-g", type=int, default=16, choices=(2, 4, 8, 16))
    args = ap.parse_args(argv)

    if not SHARED.exists():
        print("../shared/data not found beside the repo: nothing to measure")
        return 0
    t0 = time.perf_counter()
    sets = {}
    sets.update(broad_sets(args.quick, args.acc_range_g))
    broad = {k: v for k, v in sets.items() if k.startswith("broad")}
    run = running_sets(args.quick, args.acc_range_g)
    sets.update(run)
    print(f"data: {len(broad)} BROAD trials ({sum(map(len, broad.values()))} samples), "
          f"{len(run)} running segment streams ({sum(map(len, run.values()))} samples), "
          f"MPU-9250 +-{args.acc_range_g} g, +-2000 dps, AK8963 100 Hz; prepared in {time.perf_counter() - t0:.1f} s")

    print("\n== bytes per 9-DoF + quaternion sample on the wire (framing included) ==")
    spfs = [8, 16, 255]
    for label, group in (("BROAD", broad), ("running (CMU mocap + sprint)", run)):
        if not group:
            continue
        r = bytes_per_sample(group, spfs)
        for spf in spfs:
            bps, spm, per, _ = r[spf]
            worst = max(per, key=per.get)
            print(f"{label:30s} samples_per_frame={spf:3d}: {bps:5.2f} B/sample "
                  f"({spm:4.1f} samples/frame; worst stream {worst} {per[worst]:.2f})")
        if label == "BROAD":
            print("  per trial (spf=255): " + ", ".join(f"{k[6:]} {v:.2f}" for k, v in r[255][2].items()))
    print("share of 3/4-value groups whose residuals all fit one byte (-128..127), all data:")
    allrows = np.concatenate(list(sets.values())).astype(np.int64)
    for name, cols in (("acc", [0, 1, 2]), ("gyr", [3, 4, 5]), ("mag", [6, 7, 8]), ("quat", [9, 10, 11, 12])):
        x = allrows[:, cols]
        d1 = np.abs(np.diff(x, 1, axis=0)).max(axis=1)
        d2 = np.abs(np.diff(x, 2, axis=0)).max(axis=1)
        print(f"  {name:4s}: first order {np.mean(d1 <= 127) * 100:5.1f}%, second order {np.mean(d2 <= 127) * 100:5.1f}%"
              f"{'  (mag coded first order: held samples cost 0 bytes)' if name == 'mag' else ''}")
    r_all = bytes_per_sample(sets, [16, 255])
    rr = bytes_per_sample({k: v for k, v in list(sets.items())[:4]}, [255], raw=True)
    print(f"raw-only mode (9 values, first 4 streams, spf=255): {rr[255][0]:.2f} B/sample")
    print(f"uncoded reference: 26 B of values + 4 B timestamp per sample before framing")

    print("\n== capacity (all data, measured B/sample) ==")
    for spf in (16, 255):
        bps, spm, _, _ = r_all[spf]
        un, e1, e6, mb = capacity(bps, spm)
        print(f"spf={spf:3d}: {bps:.2f} B/sample, {spm:.1f} samples/frame ({mb:.0f} B/message): "
              f"921600 baud UART -> {un:.1f} nodes x 200 Hz; one ESP-NOW gateway (airtime model, 100% "
              f"channel) -> {e1:.0f} nodes at 1 Mbps, {e6:.0f} nodes at 6 Mbps")
    bps, spm, _, _ = r_all[255]
    _, e1, e6, _ = capacity(bps, spm)
    print(f"whole body, 17 nodes x 200 Hz = 3400 samples/s = {3400 * bps / 1000:.1f} kB/s "
          f"= {3400 * bps * 10 / UART_BPS * 100:.0f}% of a 921600-baud UART; {3400 / spm:.0f} ESP-NOW messages/s "
          f"= {17 / e1 * 100:.0f}% airtime at 1 Mbps, {17 / e6 * 100:.0f}% at 6 Mbps")

    # host decode speed
    print("\n== host decode ==")
    wire = bytearray()
    nsamp = 0
    for name, rows in sets.items():
        b, _ = encode(rows, 255)
        wire += b
        nsamp += len(rows)
    wire = bytes(wire)
    # the pure-Python reference decoder on the first ~60k samples (it is slow), the fast path on all
    cut = 0
    n_sub = 0
    for name, rows in sets.items():
        b, _ = encode(rows, 255)
        cut += len(b)
        n_sub += len(rows)
        if n_sub >= 60000:
            break
    cpu, wall = host_decode_speed(wire[:cut], n_sub, fast=False)
    print(f"StreamDecoder (pure Python reference, also runs on the gateway): {cpu:,.0f} samples/s per CPU "
          f"second ({wall:,.0f}/s wall; {n_sub} samples)")
    cpu, wall = host_decode_speed(wire, nsamp, fast=True)
    print(f"tsproto.fast.decode (numpy, one core): {cpu:,.0f} samples/s per CPU second ({wall:,.0f}/s wall; "
          f"{len(wire) / 1e6:.1f} MB, {nsamp} samples from {len(sets)} streams)")
    print(f"  (machine load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores during this run)")

    if not args.no_wasm:
        print("\n== encode cost on the node: MicroPython 1.27 (wasm), pystone in the same run ==")
        rows = sets.get("broad/06") if "broad/06" in sets else next(iter(sets.values()))
        rows = rows[: 3000 if args.quick else 10000]
        for spf in (16, 255):
            rounds = wasm_encode_cost(rows, spf, 3 if args.quick else 7)
            enc = []
            add_only = []
            esp = []
            for n, c, e, a, nb, st in rounds:
                enc.append((e - c) / n)
                add_only.append((a - c) / n)
                esp.append((e - c) / n * st / 1802)
            med = lambda v: float(np.median(v))  # noqa: E731
            st_med = med([r[5] for r in rounds])
            print(f"spf={spf:3d}: add()+frame() {med(enc):.2f} us/sample wasm (add() alone {med(add_only):.2f}; "
                  f"median of {len(rounds)} rounds, pystone {st_med:,.0f}/s around them; at the quiet-machine "
                  f"~51,000 pystones/s that is {med(enc) * st_med / 51000:.1f} us) -> ESP32 estimate "
                  f"{med(esp):.0f} us/sample = {med(esp) * FS / 1e4:.1f}% CPU at 200 Hz; {rounds[0][4] / rounds[0][0]:.2f} B/sample")

    if args.fuzz:
        for fast, n in ((True, args.fuzz), (False, max(args.fuzz // 10, 1000))):
            name = "tsproto.fast.FastDecoder" if fast else "StreamDecoder"
            print(f"\n== fuzz {name}: {n:,} frames, 40% corrupted, random chunking ==")
            exc, sent, out, intact, stats, dt = fuzz(n, fast=fast)
            print(f"exceptions: {exc}; frames sent {sent:,} (intact {intact:,}), messages out {out:,}; "
                  f"{dt:.0f} s; counters {stats}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
