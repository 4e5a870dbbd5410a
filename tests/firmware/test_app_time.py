"""Node time on the wire: ticks_us wraps at 2**30, the protocol's t_us at 2**32 (CPython run of
the firmware's own code)."""

from tsfw import clock
from tsfw.app import App

P = 1 << 30


def test_time32_extends_ticks_across_wraps_and_tolerates_older_stamps():
    app = App()
    seq = []
    t = P - 30_000
    for step in range(40):                    # 5 ms steps, sample stamps lag "now" by 12 ms
        now = (t + 12_000) % P
        seq.append((app._time32(t % P), app._time32(now)))
        t += 5000
    stamps = [s for s, _ in seq]
    nows = [n for _, n in seq]
    assert all(b - a == 5000 for a, b in zip(stamps, stamps[1:]))   # continuous over the wrap
    assert all(n - s == 12_000 for s, n in seq)
    assert stamps[-1] > P and stamps[0] < P
    # the 4th wrap comes back to 0: the wire value is modulo 2**32
    app._t_wraps, app._t_last = 3, P - 10
    assert app._time32(5) == 5


def test_clock_helpers_wrap_like_micropython():
    assert clock.ticks_diff(5, P - 5) == 10 and clock.ticks_diff(P - 5, 5) == -10
    assert clock.ticks_add(P - 1, 2) == 1
    m = clock.ManualClock(P - 500)
    m.advance(1500)
    assert m.ticks_us() == 1000
    ms0 = m.ticks_ms()
    m.advance(2500)
    assert clock.ticks_diff(m.ticks_ms(), ms0) in (2, 3)
