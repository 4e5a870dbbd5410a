# boot.py: runs before main.py on every reset.
# The USB serial port carries the binary wire protocol, so the ROM/IDF debug log must not write
# to it (it would corrupt frames).
try:
    import esp
    esp.osdebug(None)
except ImportError:  # not an ESP32 (simulated board)
    pass
import gc
gc.collect()
