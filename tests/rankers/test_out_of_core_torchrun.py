"""Out-of-core ranking across two processes (torchrun, gloo on the CPU) equals the single-process fit.

The moments pass splits the chunks across ranks (contiguous shares, merged pairwise in rank order); exact MI and
AP split their column blocks. Linear, L1 and Gaussian run whole on every rank (no data-parallel training yet).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from numpy.testing import assert_allclose, assert_array_equal

from tl_neuronprobe.core.neurons import Neuron
from tl_neuronprobe.data.activations import Activations
from tl_neuronprobe.rankers import fit_out_of_core, make_ranker

JOB = Path(__file__).with_name("ooc_torchrun_job.py")


def test_two_ranks_equal_one(planted_data, tmp_path):
    d = planted_data
    labels = [f"c{v}" if i % 7 else None for i, v in enumerate(d.y)]
    folder = Activations(torch.from_numpy(d.X), [Neuron(0, i) for i in range(d.X.shape[1])], ["w"] * len(d.y),
                         d.groups, {"pos": labels}).save(tmp_path / "acts")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(JOB), str(folder), str(tmp_path / "out.json")], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads((tmp_path / "out.json").read_text())
    assert got["world"] == 2
    for name in ("probeless", "f_statistic", "mutual_information", "average_precision"):
        one = fit_out_of_core(make_ranker(name), folder, "pos", chunk_rows=128)
        assert_array_equal(got[name]["order"], one.order_)
        assert_allclose(got[name]["scores"], one.scores_, rtol=1e-12, atol=1e-14)
        if name in ("mutual_information", "average_precision"):  # each rank swept half the column blocks
            assert got[name]["passes"] - 1 == -(-(one.n_passes_ - 1) // 2)
