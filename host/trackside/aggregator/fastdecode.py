"""Vectorised decoding of Trackside byte streams (numpy): the replay / bulk path.

:func:`decode_stream` finds frames (0x00 delimiters), COBS-decodes them all at once, checks
every CRC, and decodes sample batches in parallel across frames (one step per sample position,
then cumulative sums for the delta coding). It gives exactly what :class:`tsproto.StreamDecoder`
gives (tested against it, including on corrupted input) at a few million samples per second.
Frames that are not sample batches, or that use rare encodings, go through the reference decoder.

    >>> out = decode_stream(data)                                        # doctest: +SKIP
    >>> out.values.shape, out.node.shape, out.messages[:3]               # doctest: +SKIP
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np

from tsproto.consts import CRC_INIT, F_RAW, HEADER_LEN, MIN_PAYLOAD, T_SAMPLES, VERSION_MAJOR
from tsproto.decoder import StreamDecoder, decode_payload
from tsproto.frame import cobs_decode

NV = 13
# Per tag byte: byte offset (after the tag) and width (0, 1, 2) of each of the 13 residuals;
# total size of the coded sample including the tag; validity. Separate tables for raw (9 values).
_ORDER2 = np.array([True] * 6 + [False] * 3 + [True] * 4)


def _tables(raw: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    off = np.zeros((256, NV), np.int64)
    width = np.zeros((256, NV), np.int64)
    size = np.zeros(256, np.int64)
    valid = np.zeros(256, bool)
    groups = ((0, 0, 3), (2, 3, 3), (4, 6, 3)) if raw else ((0, 0, 3), (2, 3, 3), (4, 6, 3), (6, 9, 4))
    for tag in range(256):
        if raw and tag >> 6:
            continue
        o = 0
        ok = True
        # wire order: acc, gyr, mag, quat (the encoder packs residuals in this order)
        for sh, i0, cnt in groups:
            code = (tag >> sh) & 3
            if code == 3:
                ok = False
                break
            for i in range(i0, i0 + cnt):
                off[tag, i] = o
                width[tag, i] = code
                o += code
        if ok:
            valid[tag] = True
            size[tag] = 1 + o
    return off, width, size, valid


_T_FULL = _tables(False)
_T_RAW = _tables(True)


@dataclass
class Decoded:
    """Result of :func:`decode_stream`.

    Sample arrays (one row per sample, in stream order): ``node``, ``seq`` (of the frame),
    ``t_node_us`` (mod 2**32), ``values`` (S x 13 int16; quaternion zero in raw batches),
    ``frame`` (index into the frame arrays), ``flags``. Frame arrays: ``frame_node``, ``frame_seq``,
    ``frame_t_us``, ``frame_end`` (offset of the frame's delimiter in the input), ``frame_n``.
    ``messages``: other messages as ``(frame_end, Message)``. ``consumed``: bytes used (the rest
    is an unfinished frame). ``stats``: StreamDecoder-style counters.
    """

    node: np.ndarray
    seq: np.ndarray
    t_node_us: np.ndarray
    values: np.ndarray
    frame: np.ndarray
    flags: np.ndarray
    frame_node: np.ndarray
    frame_seq: np.ndarray
    frame_t_us: np.ndarray
    frame_end: np.ndarray
    frame_n: np.ndarray
    frame_period: np.ndarray
    frame_flags: np.ndarray
    messages: list = field(default_factory=list)
    consumed: int = 0
    stats: dict = field(default_factory=dict)


def _empty(stats: dict, messages: list, consumed: int) -> Decoded:
    z = np.zeros(0, np.int64)
    return Decoded(z, z, z, np.zeros((0, NV), np.int16), z, z, z, z, z, z, z, z, z, messages, consumed, stats)


def _wrap16(x: np.ndarray) -> np.ndarray:
    return ((x + 32768) & 0xFFFF) - 32768


def _segcumsum(x: np.ndarray, row0: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Cumulative sum restarting at each segment (rows row0[i] .. row0[i] + counts[i] - 1)."""
    c = np.cumsum(x, axis=0)
    base = c[row0] - x[row0]
    return c - np.repeat(base, counts, axis=0)


def decode_stream(data: bytes | bytearray | memoryview, *, max_frame: int = 2048) -> Decoded:
    """Decode every complete frame in ``data`` (see :class:`Decoded`). Never raises on bad input."""
    ref = StreamDecoder(max_frame=max_frame)  # counters, and the path for rare frames
    arr = np.frombuffer(data, dtype=np.uint8)
    delim = np.flatnonzero(arr == 0)
    messages: list = []
    if len(delim) == 0:
        return _empty(ref.stats(), messages, 0)
    consumed = int(delim[-1]) + 1
    start = np.empty(len(delim), np.int64)
    start[0] = 0
    start[1:] = delim[:-1] + 1
    end = delim.astype(np.int64)
    length = end - start
    nonempty = length > 0
    start, end, length = start[nonempty], end[nonempty], length[nonempty]
    # oversize: counted like the reference decoder (its pending buffer limit aside)
    over = length > max_frame
    ref.oversize += int(over.sum())
    ref.bytes_discarded += int((length[over] + 1).sum())
    # frames the fast path handles: payload (length - 1) between MIN_PAYLOAD and 253
    fast = (~over) & (length - 1 >= MIN_PAYLOAD) & (length <= 254)
    slow_idx = np.flatnonzero((~over) & ~fast)
    s, e = start[fast], end[fast]
    # -- COBS: follow the code-byte chains of all frames at once ---------------------------------
    out = arr.copy()
    pos = s.copy()
    alive = np.ones(len(s), bool)
    bad = np.zeros(len(s), bool)
    rare = np.zeros(len(s), bool)
    while alive.any():
        idx = np.flatnonzero(alive)
        code = arr[pos[idx]].astype(np.int64)
        rare[idx[code == 0xFF]] = True          # 0xFF blocks: leave to the reference decoder
        nxt = pos[idx] + code
        over_end = nxt > e[idx]
        bad[idx[over_end]] = True
        done = nxt >= e[idx]
        cont = idx[~done]
        out[nxt[~done]] = 0                       # a code byte inside the frame stands for a 0x00
        pos[cont] = nxt[~done]
        alive[idx[done]] = False
    cobs_bad = bad & ~rare
    ref.cobs_errors += int(cobs_bad.sum())
    ref.bytes_discarded += int((e[cobs_bad] - s[cobs_bad] + 1).sum())
    slow_idx = np.concatenate([slow_idx, np.flatnonzero(fast)[rare]])
    good = ~bad & ~rare
    s, e = s[good], e[good]
    ps = s + 1                                    # payload start (after the first code byte)
    # -- CRC ---------------------------------------------------------------------------------------
    buf = out.tobytes()
    crc_ok = np.fromiter(
        (zlib.crc32(buf[a:b - 4], CRC_INIT) == int.from_bytes(buf[b - 4:b], "little")
         for a, b in zip(ps.tolist(), e.tolist())), dtype=bool, count=len(ps))
    ref.crc_errors += int((~crc_ok).sum())
    ref.bytes_discarded += int((e[~crc_ok] - s[~crc_ok] + 1).sum())
    ps, e = ps[crc_ok], e[crc_ok]
    # -- header ------------------------------------------------------------------------------------
    o32 = out.astype(np.int64)
    ver = o32[ps]
    typ = o32[ps + 1]
    major_ok = (ver >> 4) == VERSION_MAJOR
    ref.bad_major += int((~major_ok).sum())
    is_s = major_ok & (typ == T_SAMPLES) & (e - ps >= HEADER_LEN + 4 + 4)
    other = np.flatnonzero(major_ok & ~is_s)
    for i in other.tolist():                      # hello, status, sync, acks...: reference path
        m = decode_payload(out[ps[i]:e[i]].tobytes(), ref)
        if m is False or m is None:
            continue
        ref.frames += 1
        messages.append((int(e[i]), m))
    newer = (ver & 15) > 0
    ref.newer_minor += int((newer & is_s).sum())
    ps, e = ps[is_s], e[is_s]
    b = ps + HEADER_LEN                           # batch body
    period = o32[b] | (o32[b + 1] << 8)
    flags = o32[b + 2]
    n = o32[b + 3]
    raw = (flags & F_RAW) != 0
    body_end = e - 4
    ok = (n > 0) & (b + 4 + np.where(raw, 18, 26) <= body_end)
    # Samples are decoded into flat rows (frame after frame). Raw and full frames separately.
    parts = []
    for is_raw, tables in ((False, _T_FULL), (True, _T_RAW)):
        sel = np.flatnonzero(ok & (raw == is_raw))
        if len(sel) == 0:
            continue
        off_t, width_t, size_t, valid_t = tables
        nv = 9 if is_raw else 13
        f_n = n[sel]
        nmax = int(f_n.max())
        f_b = b[sel]
        f_end = body_end[sel]
        row0 = np.cumsum(f_n) - f_n
        R = np.zeros((int(f_n.sum()), NV), np.int64)
        first = f_b[:, None] + 4 + 2 * np.arange(nv)
        R[row0, :nv] = _wrap16((o32[first] | (o32[first + 1] << 8)) ^ 0x8080)
        o = f_b + 4 + 2 * nv
        fbad = np.zeros(len(sel), bool)
        top = len(o32) - 2
        for k in range(1, nmax):
            act = np.flatnonzero((f_n > k) & ~fbad)
            if len(act) == 0:
                break
            oa = o[act]
            tag = o32[np.minimum(oa, top)]
            sz = size_t[tag]
            v = valid_t[tag] & (oa < f_end[act]) & (oa + sz <= f_end[act])
            fbad[act[~v]] = True
            act, oa, tag, sz = act[v], oa[v], tag[v], sz[v]
            w = width_t[tag]
            idx = np.minimum(oa[:, None] + 1 + off_t[tag], top)
            lo = o32[idx]
            r = np.where(w == 1, lo - 128, np.where(w == 2, _wrap16((lo | (o32[idx + 1] << 8)) ^ 0x8080), 0))
            R[row0[act] + k] = r
            o[act] = oa + sz
        ref.malformed += int(fbad.sum())
        # undo the delta coding per frame (segmented cumulative sums over the rows)
        p0 = np.repeat(R[row0], f_n, axis=0)
        X = R.copy()
        X[row0] = 0
        D = _segcumsum(X, row0, f_n)               # first differences (mag: values - first)
        P2 = _segcumsum(_wrap16(D), row0, f_n)     # second order: sum of the differences
        P = _wrap16(p0 + np.where(_ORDER2, P2, D))
        if is_raw:
            P[:, 9:] = 0
        keep = np.repeat(~fbad, f_n)
        parts.append((sel[~fbad], f_n[~fbad], P[keep]))
    ref.malformed += int((~ok).sum())
    # -- assemble in stream order -------------------------------------------------------------------
    if parts:
        sel = np.concatenate([p[0] for p in parts])
        counts = np.concatenate([p[1] for p in parts])
        rows = np.concatenate([p[2] for p in parts])
        if len(parts) > 1:
            order = np.argsort(sel, kind="stable")
            row_order = np.argsort(np.repeat(sel, counts), kind="stable")
            sel, counts, rows = sel[order], counts[order], rows[row_order]
        values = rows.astype(np.int16)
        frame_of_row = np.repeat(np.arange(len(sel)), counts)
        k_of_row = np.arange(len(frame_of_row)) - np.repeat(np.cumsum(counts) - counts, counts)
    else:
        sel = np.zeros(0, np.int64)
        counts = np.zeros(0, np.int64)
        values = np.zeros((0, NV), np.int16)
        frame_of_row = np.zeros(0, np.int64)
        k_of_row = np.zeros(0, np.int64)
    fp = ps[sel]
    f_node = o32[fp + 2]
    f_seq = o32[fp + 3] | (o32[fp + 4] << 8)
    f_t = o32[fp + 5] | (o32[fp + 6] << 8) | (o32[fp + 7] << 16) | (o32[fp + 8] << 24)
    f_period = period[sel]
    f_flags = flags[sel]
    ref.frames += len(sel)
    # messages delivered by the reference path must be merged in stream order by the caller
    # (frame_end); here they are only counted.
    dec = Decoded(
        node=f_node[frame_of_row],
        seq=f_seq[frame_of_row],
        t_node_us=(f_t[frame_of_row] + k_of_row * f_period[frame_of_row]) & 0xFFFFFFFF,
        values=values,
        frame=frame_of_row,
        flags=f_flags[frame_of_row],
        frame_node=f_node,
        frame_seq=f_seq,
        frame_t_us=f_t,
        frame_end=e[sel],
        frame_n=counts,
        frame_period=f_period,
        frame_flags=f_flags,
        messages=messages,
        consumed=consumed,
        stats=ref.stats(),
    )
    # rare frames (0xFF COBS blocks, odd sizes): the reference decoder, merged in stream order
    if len(slow_idx):
        rare_s = []
        for i in sorted(slow_idx.tolist()):
            a, z = int(start[i]), int(end[i])
            for m in ref.feed(bytes(arr[a:z + 1])):
                if m.type == T_SAMPLES:
                    rare_s.append((z, m))
                else:
                    messages.append((z, m))
        messages.sort(key=lambda x: x[0])
        if rare_s:
            dec = _merge(dec, rare_s)
        dec.stats = ref.stats()
    return dec


def _merge(dec: Decoded, extra: list) -> Decoded:
    """Add sample batches decoded by the reference path, keeping stream order."""
    fe = np.concatenate([dec.frame_end, [z for z, _ in extra]])
    f_node = np.concatenate([dec.frame_node, [m.node_id for _, m in extra]])
    f_seq = np.concatenate([dec.frame_seq, [m.seq for _, m in extra]])
    f_t = np.concatenate([dec.frame_t_us, [m.t_us for _, m in extra]])
    f_n = np.concatenate([dec.frame_n, [len(m.samples) for _, m in extra]])
    f_p = np.concatenate([dec.frame_period, [m.period_us for _, m in extra]])
    f_f = np.concatenate([dec.frame_flags, [m.flags for _, m in extra]])
    vals = [dec.values[dec.frame == i] for i in range(len(dec.frame_end))]
    vals += [np.array(m.samples, np.int16).reshape(-1, NV) for _, m in extra]
    order = np.argsort(fe, kind="stable")
    vals = [vals[i] for i in order]
    fe, f_node, f_seq, f_t, f_n, f_p, f_f = (x[order].astype(np.int64) for x in (fe, f_node, f_seq, f_t, f_n, f_p, f_f))
    frame = np.repeat(np.arange(len(fe)), f_n)
    k = np.arange(len(frame)) - np.repeat(np.cumsum(f_n) - f_n, f_n)
    return Decoded(f_node[frame], f_seq[frame], (f_t[frame] + k * f_p[frame]) & 0xFFFFFFFF,
                   np.concatenate(vals) if vals else np.zeros((0, NV), np.int16), frame, f_f[frame],
                   f_node, f_seq, f_t, fe, f_n, f_p, f_f, dec.messages, dec.consumed, dec.stats)


def reference_decode(data: bytes) -> list:
    """All messages of ``data`` by the reference decoder (for tests and cross-checks)."""
    d = StreamDecoder()
    return d.feed(data)


__all__ = ["Decoded", "decode_stream", "reference_decode", "cobs_decode"]
