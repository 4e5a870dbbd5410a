# main.py: start the node (or the gateway, when the config says role "gateway").
#
# Safe mode: hold the BOOT button (GPIO0) during reset to skip the firmware and keep the REPL
# (for mpremote). A crash is written to /crash.txt and followed by a 5 s pause before the reset,
# so a broken node never turns into a fast reboot loop.
import sys


def _safe_mode():
    try:
        import machine
        return machine.Pin(0, machine.Pin.IN, machine.Pin.PULL_UP).value() == 0
    except Exception:
        return False


def _crash(e):
    try:
        with open("/crash.txt", "w") as f:
            sys.print_exception(e, f)
    except Exception:
        pass
    try:
        import micropython
        micropython.kbd_intr(3)
    except Exception:
        pass
    try:
        from tsfw import clock  # the board's clock (virtual on a simulated board)
        clock.sleep_us(5000000)
    except Exception:
        import time
        time.sleep(5)
    import machine
    machine.reset()


def _start():
    from tsfw import config
    cfg, log = config.load()
    if cfg["role"] == "gateway":
        from tsfw import gateway
        gateway.main(cfg)
    else:
        from tsfw import app
        app.main(cfg=cfg, log=log)


if not _safe_mode():
    try:
        _start()
    except KeyboardInterrupt:
        pass
    except Exception as e:
        _crash(e)
