"""Peak resident memory and time of out-of-core ranking on a matrix several times larger than its RAM budget.

Writes a float32 activations folder block by block (``TensorFileWriter``: the writer stays bounded too), measures
the process's resident memory after the imports and a warm-up fit (the baseline), then for each ranker resets
the kernel's high-water mark (``/proc/self/clear_refs``), fits it with ``fit_out_of_core(chunk_bytes=budget)``
and reads the peak (``VmHWM``; a thread polling ``VmRSS`` every 2 ms is the fallback where the reset is not
allowed), each ranker in a fresh process (glibc keeps freed temporaries of one fit resident for the next).
Prints one JSON line for the matrix and one per ranker; ``tests/rankers/test_out_of_core_memory.py`` runs it
small in CI, the full-size figures in docs/scaling.md (out-of-core section) come from::

    OMP_NUM_THREADS=1 python tests/benchmarks/measure_out_of_core.py --rows 75000 --neurons 4096 \\
        --budget-mb 256 --rankers probeless,f_statistic,mutual_information,linear
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

from tl_neuronprobe.core.neurons import Neuron
from tl_neuronprobe.data._tensorfile import TensorFileWriter
from tl_neuronprobe.data.activations import META_FILE, TENSOR_FILE, Activations, write_meta
from tl_neuronprobe.rankers import fit_out_of_core, make_ranker

MB = 1 << 20


def write_planted(folder: Path, n_rows: int, n_neurons: int, n_classes: int = 8, seed: int = 0,
                  block_rows: int = 2048) -> np.ndarray:
    """A float32 [n_rows, n_neurons] folder: noise, and neuron 7c shifted by 1.5 for class c; returns the
    planted neurons. Written in blocks of ``block_rows``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n_rows)
    planted = (np.arange(n_classes) * 7) % n_neurons
    writer = TensorFileWriter(folder / TENSOR_FILE, n_rows, n_neurons, torch.float32)
    for s in range(0, n_rows, block_rows):
        yb = y[s: s + block_rows]
        block = rng.standard_normal((len(yb), n_neurons), dtype=np.float32)
        block[np.arange(len(yb)), planted[yb]] += 1.5
        writer.write_rows(s, torch.from_numpy(block))
    writer.close()
    write_meta(folder / META_FILE, neurons=[["mlp.post", 0, i] for i in range(n_neurons)], words=["w"] * n_rows,
               sentence_ids=(np.arange(n_rows) // 20).tolist(), attributes={"label": [f"c{v}" for v in y]}, meta={})
    return planted


def _status(field: str) -> int:
    """A ``/proc/self/status`` memory field in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


class PeakRSS:
    """Peak resident memory over a block: the kernel's high-water mark after a reset, else a polling thread."""

    def __enter__(self) -> "PeakRSS":
        try:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
            self.kernel = _status("VmHWM") <= _status("VmRSS") + MB
        except OSError:
            self.kernel = False
        self.polled, self._stop = _status("VmRSS"), threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self) -> None:
        while not self._stop.wait(0.002):
            self.polled = max(self.polled, _status("VmRSS"))

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.polled, _status("VmHWM") if self.kernel else 0)


def fit_in_memory(name: str, folder: Path, seed: int = 0):
    """The in-memory route for comparison: load (memory-mapped), take the dataset, fit."""
    acts = Activations.load(folder)
    X, y, classes = acts.dataset("label")
    r = make_ranker(name, seed=seed).fit(X.numpy(), np.asarray(classes)[y.numpy()])
    r.chunk_rows_ = None
    return r


def measure(folder: Path, rankers: list[str], budget: int, seed: int = 0, in_memory: bool = False) -> list[dict]:
    """Fit each ranker out of core with ``chunk_bytes=budget`` (or in memory); peak RSS over the baseline and
    seconds."""
    imported = _status("VmRSS")
    warm = np.random.default_rng(1).standard_normal((600, 8)).astype(np.float32)
    for name in rankers:  # lazy imports and allocator pools before the baseline
        make_ranker(name, seed=seed).fit(warm, np.arange(600) % 2)
    gc.collect()
    baseline = _status("VmRSS")
    out = []
    for name in rankers:
        gc.collect()
        with PeakRSS() as peak:
            t0 = time.perf_counter()
            if in_memory:
                r = fit_in_memory(name, folder, seed)
            else:
                r = fit_out_of_core(make_ranker(name, seed=seed), folder, "label", chunk_bytes=budget)
            seconds = time.perf_counter() - t0
        out.append({"ranker": name, "seconds": round(seconds, 2), "import_mb": round(imported / MB, 1),
                    "baseline_mb": round(baseline / MB, 1), "peak_mb": round(peak.peak / MB, 1),
                    "extra_mb": round((peak.peak - baseline) / MB, 1), "budget_mb": round(budget / MB, 1),
                    "passes": getattr(r, "n_passes_", None), "chunk_rows": r.chunk_rows_,
                    "top": [int(i) for i in r.order_[:8]], "peak_source": "VmHWM" if peak.kernel else "polled",
                    "route": "in memory" if in_memory else "out of core"})
        del r
    return out


def main(argv: "list[str] | None" = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=75000)
    p.add_argument("--neurons", type=int, default=4096)
    p.add_argument("--budget-mb", type=float, default=256)
    p.add_argument("--rankers", default="probeless,f_statistic,mutual_information,linear")
    p.add_argument("--dir", default=None, help="where to write the matrix (default: a temporary folder)")
    p.add_argument("--folder", default=None, help="measure in this process on this written folder (internal)")
    p.add_argument("--same-process", action="store_true", help="every ranker in one measuring process (faster)")
    p.add_argument("--in-memory", action="store_true", help="also measure the in-memory route (load, dataset, fit)")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    if a.folder:
        for row in measure(Path(a.folder), a.rankers.split(","), int(a.budget_mb * MB), in_memory=a.in_memory):
            print(json.dumps(row), flush=True)
        return 0
    with tempfile.TemporaryDirectory(dir=a.dir) as tmp:
        folder = Path(tmp) / "acts"
        t0 = time.perf_counter()
        planted = write_planted(folder, a.rows, a.neurons)
        size = (folder / TENSOR_FILE).stat().st_size
        print(json.dumps({"matrix_mb": round(size / MB, 1), "budget_mb": a.budget_mb,
                          "ratio": round(size / (a.budget_mb * MB), 2),
                          "write_seconds": round(time.perf_counter() - t0, 1), "planted": planted.tolist()}), flush=True)
        groups = [a.rankers] if a.same_process else a.rankers.split(",")
        for names in groups:  # by default one fresh process per ranker: no allocator state carried over
            for route in ([], ["--in-memory"]) if a.in_memory else ([],):
                subprocess.run([sys.executable, __file__, "--folder", str(folder), "--rankers", names,
                                "--budget-mb", str(a.budget_mb)] + route, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
