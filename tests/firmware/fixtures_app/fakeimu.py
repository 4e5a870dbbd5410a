# A minimal stand-in IMU for link/gateway tests (the register-level chip models are tested with
# the drivers): samples appear at the configured rate as the injected clock advances.
from tsfw import clock


class FakeIMU:
    chip = "fake"
    has_gyro = True
    has_mag = True
    acc_lsb_per_g = (2048, 1)
    gyro_lsb_per_dps = (131, 8)
    mag_ut_per_lsb = (3, 20)

    def __init__(self, rate_hz=200, capacity=40):
        self.overflows = 0
        self.i2c_errors = 0
        self.capacity = capacity
        self.k = 0
        self.configure(rate_hz, 16, 2000)

    def configure(self, rate_hz, acc_range_g, gyro_range_dps):
        if rate_hz > 1000:
            raise ValueError("rate_hz too high")
        self.rate_hz = rate_hz
        self.period = self.period_us = 1000000 // rate_hz
        self.last = clock.ticks_us()

    def reset_fifo(self):
        self.last = clock.ticks_us()

    def fifo_read(self, out, max_n, ts=None):
        n = clock.ticks_diff(clock.ticks_us(), self.last) // self.period
        if n > self.capacity:  # the FIFO overflowed: the oldest samples are gone
            self.overflows += 1
            self.last = clock.ticks_add(self.last, (n - self.capacity) * self.period)
            n = self.capacity
        if n > max_n:
            n = max_n
        for i in range(n):
            self.last = clock.ticks_add(self.last, self.period)
            if ts is not None:
                ts[i] = self.last
            b = 9 * i
            k = self.k
            out[b] = (k * 7) % 200 - 100
            out[b + 1] = 50
            out[b + 2] = 2048
            out[b + 3] = 3
            out[b + 4] = -2
            out[b + 5] = k % 16
            out[b + 6] = 100
            out[b + 7] = 200
            out[b + 8] = -300
            self.k = k + 1
        return n
