"""Speed and quality measurements. Run each from the repository root as `python -m bench.NAME`;
each prints JSON that records the machine it ran on (bench.machine)."""
