"""SASRec Explorer's engine. See README.md ("Project layout") for the modules."""

import os

# OpenMP threads that wait for each other passively. On a machine that does anything else (a
# browser, the app, another run), a spinning thread waiting for a preempted one burns the other
# core: on 2 busy cores a Sports epoch took 930 s spinning and 43 s passive. On an idle machine
# passive costs a few percent (bench/ui_responsiveness.py; README, "Results"). Set before torch
# loads its OpenMP runtime, which `python -m sasrec ...` does after importing this package.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
