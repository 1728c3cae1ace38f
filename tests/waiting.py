"""Waiting for another process (a training run) to get somewhere."""

import time


def wait_until(condition, timeout=120, every=0.05):
    """Poll `condition` until it holds; fail the test after `timeout` seconds."""
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(every)
