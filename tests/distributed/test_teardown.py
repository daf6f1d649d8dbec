"""The process group is torn down at exit only once every rank got there (``distributed._teardown``): a rank
that finished early waits for the others rather than destroying its group under them, and none is left alive."""

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def test_ranks_tear_down_together(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(HERE / "teardown_script.py"), str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-4000:]
    rank0, rank1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert rank0["gathered"] == rank1["gathered"] == [0, 1]
    assert not rank0["initialized_at_exit"] and not rank1["initialized_at_exit"]
    # rank 1 had nothing left to do after the gather, yet its group lived until rank 0's work was done
    assert rank1["work_done"] < rank0["work_done"] - 1.0
    assert rank1["gone"] >= rank0["work_done"]
