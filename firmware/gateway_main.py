# gateway_main.py: run the ESP-NOW gateway whatever the config's role (copy as main.py onto a
# gateway board, or `mpremote run gateway_main.py`).
from tsfw import config, gateway

cfg, log = config.load()
gateway.main(cfg)
