# A node on the simulated board, driven step by step in virtual time (run under wasm by
# tests/firmware/test_app*.py). Scenario in /scenario.json:
#   chip: "mpu9250" | "" (no sensor), stream: optional [rate_mhz, [rows...]] 9 channels,
#   seconds: virtual run time, stall_at/stall_ms: stop serving the loop for a while (FIFO
#   overflow), install_at: plug the chip in at that time (missing sensor first), commands:
#   [[at_s, cmd, args]...] injected through the node's own frame handler, i2c_fail_every: flaky
#   bus, alloc: measure heap allocations of the sampling loop (gc.mem_alloc, gc disabled).
import json
import sys
import gc

import board
from tsfw import clock

sc = json.load(open("/scenario.json"))
board.reset(1000)
board.set_adc(35, sc.get("vbat_pin_uv", 1950000))


def make_chip():
    kw = {}
    st = sc.get("stream")
    if sc.get("stream_file"):
        kw["stream"] = sc["stream_file"]
    elif st:
        from chips.base import Stream
        from array import array
        rows = st[1]
        data = array("i", [v for row in rows for v in row])
        kw["stream"] = Stream(data=data, channels=9, rate_mhz=st[0])
    return board.make_chip(sc["chip"], **kw)


chip = None
if sc.get("chip") and not sc.get("install_at"):
    chip = board.install(make_chip())
clock.use(board.clock)

from tsproto.frame import FrameWriter
import tsproto.messages as M
import tsproto.consts as C
from tsfw.app import App

app = App(config_path="/config.json")
app.boot()
first_row = getattr(chip, "samples", -1) if chip is not None else -1  # stream row of the first streamed sample
if sc.get("i2c_fail_every"):
    board.bus(0).fail_every(sc["i2c_fail_every"])

host = FrameWriter(C.NODE_HOST)
cmds = sorted(sc.get("commands", []), key=lambda c: c[0])
end_us = int(sc["seconds"] * 1e6)
stall_at = int(sc.get("stall_at", -1) * 1e6)
install_at = int(sc.get("install_at", -1) * 1e6)
detach_at = int(sc.get("detach_at", -1) * 1e6)   # unplug the chip (every address NACKs)
reattach_at = int(sc.get("reattach_at", -1) * 1e6)
alloc = sc.get("alloc")
alloc_bytes = alloc_samples = alloc_frames = 0
alloc_seqs = []   # [first, end) sequence numbers of the frames written by measured drains
f0 = s0 = q0 = m0 = 0  # globals made before measuring (a new global could grow the dict)
while board.clock.elapsed_us() < end_us:
    el = board.clock.elapsed_us()
    if stall_at >= 0 and el >= stall_at:
        stall_at = -1
        board.clock.advance(int(sc["stall_ms"] * 1000))  # e.g. a long GC pause / blocked radio
    if install_at >= 0 and el >= install_at:
        install_at = -1
        chip = board.install(make_chip())
    if detach_at >= 0 and el >= detach_at:
        detach_at = -1
        for addr, dev in chip.devices():
            board.bus(0).detach(addr)
    if reattach_at >= 0 and el >= reattach_at:
        reattach_at = -1
        board.install(chip)
    while cmds and el >= cmds[0][0] * 1e6:
        at, cmd, args = cmds.pop(0)
        host.node_id = app.cfg["node_id"]
        f = host.frame(C.T_COMMAND, 0, M.Command(cmd=cmd, args=tuple(args)).body())
        app._handle_frame(f, len(f) - 1)
    if alloc and app.streaming and el > 1000000:
        # the sampling loop alone: FIFO read + calibration + filter + batching + link write
        if gc.isenabled():
            gc.collect()
            gc.disable()  # from now on gc.mem_alloc() only grows: deltas are exact
        f0 = app.frames_sent
        s0 = app.samples
        q0 = app.writer.seq
        m0 = gc.mem_alloc()
        app.drain(clock.ticks_us())
        alloc_bytes += gc.mem_alloc() - m0
        if app.writer.seq != q0:
            alloc_seqs.append([q0, app.writer.seq])
        alloc_samples += app.samples - s0
        alloc_frames += app.frames_sent - f0
        app.step()  # serve the link, status, LED (the drain is not due again yet)
    else:
        app.step()
    app.idle()
gc.enable()
app.stop()
print("\nRESULT " + json.dumps({
    "samples": app.samples, "frames": app.frames_sent, "overruns": app.loop_overruns,
    "fifo_overflows": app.fifo_overflows, "streaming": app.streaming,
    "led_changes": len(board.pin_log), "alloc_bytes": alloc_bytes,
    "alloc_samples": alloc_samples, "alloc_frames": alloc_frames, "alloc_seqs": alloc_seqs, "first_row": first_row,
    "cfg": app.cfg}), file=sys.stderr)
