"""Probeless's default (class pairs weighted by class shares) against the published uniform sum on real English.

    OMP_NUM_THREADS=1 python tests/benchmarks/measure_probeless_weights.py --cache /tmp/probeless_acts

MiniLM layer 0 (``mlp.post``, 1,536 neurons), extracted once into ``--cache``: the first ``--sentences``
sentences of the tune part of EWT train (``split_by_document``) to fit on, the shipped held-out slice
(``Corpus.load("ud-english")``) to score on. Prints, per attribute, where the known neurons rank (Number:
L0.N984, VerbForm and Tense: L0.N1477) with each weighting's top five and their driving classes, then the
logistic-probe accuracy on the top-k of each ranking fitted on the tune words and scored on the held-out words
(``evaluate_encoded(tune, attribute, test=heldout)``).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

import tl_neuronprobe as tnp  # noqa: E402
from tl_neuronprobe.data.treebank import split_by_document  # noqa: E402
from tl_neuronprobe.evaluation.encoded import EncodedConfig  # noqa: E402
from tl_neuronprobe.rankers import Probeless  # noqa: E402
from tl_neuronprobe.data.extraction import ExtractConfig  # noqa: E402

KNOWN = {"Number": "L0.N984", "VerbForm": "L0.N1477", "Tense": "L0.N1477", "upos": None}


def activations(cache: Path, treebank: str, sentences: int) -> dict[str, tnp.Activations]:
    """Layer-0 activations of the tune sentences and of the held-out slice, extracted into ``cache`` once."""
    corpora = None
    out = {}
    for part in ("tune", "heldout"):
        path = cache / part
        if not path.exists():
            if corpora is None:
                tune = split_by_document(tnp.Corpus.from_conllu(treebank))["tune"]
                corpora = {"tune": tune.subset(range(min(sentences, len(tune)))),
                           "heldout": tnp.Corpus.load("ud-english")}
            tnp.extract(tnp.models.load("minilm", device="cpu"), corpora[part],
                        ExtractConfig(site="mlp.post", layers=[0], long_sentences="skip"), out_dir=path, progress=False)
        out[part] = tnp.Activations.load(path)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=Path("/tmp/probeless_acts"))
    ap.add_argument("--treebank", default="/work/shared/data/en_ewt-ud-train.conllu")
    ap.add_argument("--sentences", type=int, default=4000)
    ap.add_argument("--ks", default="5,10,20,50,100")
    args = ap.parse_args()
    torch.set_num_threads(1)
    acts = activations(args.cache, args.treebank, args.sentences)
    tune, held = acts["tune"], acts["heldout"]
    for attr, neuron in KNOWN.items():
        X, y, classes = tune.dataset(attr, min_count=2)
        for weight in ("frequency", "uniform"):
            r = Probeless(pair_weight=weight).fit(X.numpy(), y.numpy())
            top = " ".join(f"{tune.neurons[j]}({classes[r.driver_class_[j]]} {r.driver_share_[j]:.2f})"
                           for j in r.order_[:5])
            where = f"{neuron} at #{int(r.ranks_[tune.columns([neuron])[0]]) + 1}; " if neuron else ""
            print(f"{attr} {weight}: {where}top 5 {top}")
        config = EncodedConfig(ks=[int(k) for k in args.ks.split(",")], probes=["logistic"], control=False)
        result = tnp.evaluate_encoded(tune, attr, {"frequency": Probeless(), "uniform": Probeless(pair_weight="uniform")},
                                      config, test=held)
        table = result.table
        top = table[table.selection == "top"].pivot_table(index="k", columns="ranking", values="accuracy")
        print(f"{attr}: held-out accuracy on the top k (train {result.extra['n_train']} words, test "
              f"{result.extra['n_test']})\n{top.round(3).to_string()}", flush=True)


if __name__ == "__main__":
    main()
