import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


import time  # noqa: E402

import pytest  # noqa: E402

# the paper gateway (ibsim) as the live tests run it: fast clock, closed hours skipped
SIM = {"speed": 600, "clock": {"skip_closed": True, "quote_refresh_seconds": 0.25}}


@pytest.fixture
def sim():
    """A paper gateway on 127.0.0.1 (a free port) for one test."""
    from ibsim.server import SimThread
    s = SimThread(SIM)
    s.start()
    yield s
    s.stop()


def wait_for(pred, timeout=20.0, step=0.1) -> bool:
    """Poll ``pred`` until it holds (True) or ``timeout`` seconds pass (False)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return False
