"""Run under ``torchrun --standalone --nproc_per_node 2 teardown_script.py OUT``: each rank gathers once through
:mod:`tl_neuronprobe.core.distributed`, rank 0 then works on alone for ``LINGER`` seconds, and each rank writes
``OUT/rank{r}.json``: when its work ended and (from an exit handler that runs after the package's teardown) when
its process group was gone."""

import atexit
import json
import sys
import time
from pathlib import Path

import torch.distributed as dist

from tl_neuronprobe.core import distributed

LINGER = 2.0


def main(out: Path) -> None:
    times: dict = {}

    def record() -> None:  # registered first, so it runs after the teardown that setup() registers
        times.update(gone=time.time(), initialized_at_exit=dist.is_initialized())
        (out / f"rank{times['rank']}.json").write_text(json.dumps(times))

    atexit.register(record)
    distributed.setup()
    times.update(rank=distributed.rank(), gathered=distributed.gather(distributed.rank()))
    if distributed.is_main():
        time.sleep(LINGER)  # e.g. rank 0 writing the results alone
    times["work_done"] = time.time()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
