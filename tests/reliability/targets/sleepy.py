"""A --target that stays quiet: build() sleeps (optionally ignoring SIGINT) and prints
nothing, the case where an orphaned child never notices a broken stdout. It writes its pid
(and the names in its environment) to $AIPERF_TEST_DUMP when that is set."""

import json
import os
import signal
import time


def build(params=None):
    if os.environ.get("AIPERF_TEST_IGNORE_SIGINT"):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    dump = os.environ.get("AIPERF_TEST_DUMP")
    if dump:
        with open(dump, "w") as fh:
            json.dump({"pid": os.getpid(), "env": sorted(os.environ)}, fh)
    time.sleep(float(os.environ.get("AIPERF_TEST_SLEEP", "60")))
    raise RuntimeError("slept long enough")
