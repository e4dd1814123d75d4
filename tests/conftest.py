import os
import sys

# This VM's OpenMP spin-waiting makes 2-thread CPU kernels ~10x slower; passive waiting
# (and one thread per process for the 2-process runs) keeps the suite fast and stable.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
