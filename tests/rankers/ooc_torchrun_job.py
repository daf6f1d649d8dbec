"""Run under ``torchrun --nproc_per_node 2``: out-of-core fits split across ranks; rank 0 writes the scores.

Used by ``test_out_of_core_torchrun.py`` (argv: activations folder, output JSON, attribute (default pos))."""

import json
import sys

from tl_neuronprobe.core import distributed
from tl_neuronprobe.rankers import fit_out_of_core, make_ranker

distributed.setup("gloo")
folder, out = sys.argv[1], sys.argv[2]
attribute = sys.argv[3] if len(sys.argv) > 3 else "pos"
result = {}
for name in ("probeless", "f_statistic", "mutual_information", "average_precision"):
    r = fit_out_of_core(make_ranker(name), folder, attribute, chunk_rows=128)
    result[name] = {"order": r.order_.tolist(), "scores": [float(s) for s in r.scores_], "passes": r.n_passes_}
if distributed.is_main():
    with open(out, "w") as fh:
        json.dump({"world": distributed.world_size(), **result}, fh)
distributed.barrier()
