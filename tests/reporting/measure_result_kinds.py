"""Issue 21 findings 2-3 on real English (held-out shipped slice, 150 sentences): MiniLM layer 3, Number and Tense,
encoded, used (divergence readout) and their comparison, reported keyed as docs/report.md shows; prints the
encoded table with both chance levels, each per-k better-than-random verdict, the summaries and the used headings.
Usage: python tests/reporting/measure_result_kinds.py [SITE_DIR]"""

from __future__ import annotations

import re
import sys
import time
import warnings

import torch

import tl_neuronprobe as tnp
from tl_neuronprobe.evaluation.encoded import EncodedConfig
from tl_neuronprobe.data.extraction import ExtractConfig
from tl_neuronprobe.evaluation.used import Baselines, UsedConfig

warnings.simplefilter("ignore")
torch.set_num_threads(1)
t0 = time.time()
model = tnp.models.load("minilm")
corpus = tnp.Corpus.load("ud-english:150")
acts = tnp.extract(model, corpus, ExtractConfig(site="mlp.post", layers=[3]), progress=False)
objects = {"acts": acts}
for attr in ("Number", "Tense"):
    enc = tnp.evaluate_encoded(acts, attr, ["linear", "probeless", "random"],
                               EncodedConfig(ks=[1, 5, 20, 100], probes=["logistic"], seed=0))
    used = tnp.evaluate_used(model, corpus, attr, enc,
                             UsedConfig(ks=[1, 5, 20, 100], readout=tnp.interventions.Divergence(), n_bootstrap=200,
                                        baselines=Baselines(bottom=False, n_random=2), seed=0), progress=False)
    cmp = tnp.compare_encoded_used(enc, used)
    objects[f"minilm/{attr}"], objects[f"minilm/{attr} compare"] = used, cmp
    table = enc.table
    sel = table[(table.selection == "top") & (table.ranking == "linear")][["k", "accuracy", "chance", "control_accuracy",
                                                                      "control_chance", "selectivity"]]
    print(attr, "encoded (linear, top):\n", sel.round(3).to_string(index=False))
    print(cmp.per_k[["k", "best_used", "better_than_random", "not_better_than_random"]].to_string(index=False))
    print(cmp.summary, "\n")
index = tnp.report(objects, sys.argv[1] if len(sys.argv) > 1 else "/tmp/minilm_site")
html = index.read_text().split('<section id="used">')[1].split("</section>")[0]
print("used headings:", re.findall(r"<h3>(.*?)</h3>", html))
print(f"{time.time() - t0:.0f} s")
