"""Command line for the used evaluation: ``evaluate-used`` and ``compare``, and the demo's encoded-versus-used stage.

::

    tl-neuronprobe evaluate-used --model agreement --data synthetic:300 --attribute Number \\
        --rankings probeless,linear --layer 0 --ks 1,2,5,10,20 --out used/
    tl-neuronprobe compare --encoded encoded_Number.csv --used used/used_Number.csv --out compare/
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from .neurons import Neuron, parse_neurons

#: built-in models that need no weights (``agreement`` is trained on the spot, in seconds)
BUILTIN_MODELS = ("planted", "agreement", "tiny")


def load_model(name: str, device: str | None = None, seed: int = 0):
    """``planted`` / ``agreement`` (trained here) / ``tiny``, ``minilm``, or a Hugging Face folder or name."""
    if name.lower() == "agreement":
        from .agreement import train_agreement_decoder

        model = train_agreement_decoder(seed=seed)
        return model.to(device) if device else model
    from . import models

    return models.load(name, device=device)


def read_ranking_file(path: "str | Path") -> dict[str, list[Neuron]]:
    """Neuron orders from a file, best first: ``.txt`` (one neuron per line, or comma-separated), ``.json`` (a
    list, or a dict name -> list) or ``.csv`` (a ``neuron`` column, optionally grouped by ``ranker``/``ranking``
    and ordered by ``rank``)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"ranking file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".json":
        data = json.loads(path.read_text())
        if isinstance(data, dict):
            return {str(k): parse_neurons(v) for k, v in data.items()}
        return {path.stem: parse_neurons(data)}
    if suffix == ".csv":
        df = pd.read_csv(path)
        if "neuron" not in df.columns:
            raise ValueError(f"{path}: a ranking CSV needs a 'neuron' column (has {list(df.columns)})")
        group = next((c for c in ("ranking", "ranker") if c in df.columns), None)
        if "rank" in df.columns:
            df = df.sort_values([c for c in (group, "rank") if c], kind="stable")
        if group is None:
            return {path.stem: parse_neurons(df["neuron"].astype(str))}
        return {str(g): parse_neurons(d["neuron"].astype(str)) for g, d in df.groupby(group, sort=False)}
    text = path.read_text().replace("\n", ",")
    return {path.stem: parse_neurons(text)}


def parse_rankings(spec: str) -> dict[str, Any]:
    """``probeless,linear`` (ranker names), ``name=path`` or ``path`` (files, see :func:`read_ranking_file`)."""
    out: dict[str, Any] = {}
    for item in [x.strip() for x in spec.split(",") if x.strip()]:
        name, _, target = item.partition("=") if "=" in item else ("", "", item)
        if Path(target).suffix.lower() in (".txt", ".json", ".csv") or Path(target).exists():
            orders = read_ranking_file(target)
            if name and len(orders) == 1:
                orders = {name: next(iter(orders.values()))}
            out.update(orders)
        else:
            out[name or target.lower()] = target
    if not out:
        raise ValueError("--rankings is empty")
    return out


def _ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"expected comma-separated integers, got {text!r}") from None


def cmd_evaluate_used(args) -> int:
    from .corpus import Corpus
    from .used import evaluate_used, plot_used

    model = load_model(args.model, args.device, args.seed)
    corpus = Corpus.load(args.data, seed=args.seed)
    fit = Corpus.load(args.fit_data, seed=args.seed + 1) if args.fit_data else None
    alpha: Any = args.alpha if args.alpha == "scaled" else float(args.alpha)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    table = evaluate_used(model, corpus, args.attribute, parse_rankings(args.rankings), _ints(args.ks),
                          method=args.method, readout=args.readout, site=args.site, layer=args.layer,
                          positions=args.positions, alpha=alpha, beta=args.beta, n_random=args.n_random,
                          bottom=not args.no_bottom, n_bootstrap=args.n_bootstrap, seed=args.seed, fit_corpus=fit,
                          batch_size=args.batch_size, strategy=args.strategy, progress=not args.no_progress)
    stem = f"used_{args.attribute}"
    table.to_csv(out / f"{stem}.csv", index=False)
    import matplotlib.pyplot as plt

    plt.close(plot_used(table, out / f"{stem}.png"))
    info = dict(table.attrs, seconds=round(time.perf_counter() - t0, 2), model=args.model, data=args.data)
    (out / f"{stem}.json").write_text(json.dumps(info, indent=2, default=str))
    top = table[table.selection != "bottom"].pivot_table(index=["ranking", "k"], columns=["metric", "selection"],
                                                          values="value")
    print(top.round(3).to_string())
    print(f"{info['readout']} readout, {info['strategy']} strategy, {info['forward_passes']} forward passes, "
          f"{info['seconds']} s; written to {out}")
    return 0


def cmd_compare(args) -> int:
    from .used import compare_encoded_used

    enc = pd.read_csv(args.encoded)
    used = pd.read_csv(args.used)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    res = compare_encoded_used(enc, used, encoded_metric=args.encoded_metric, used_metric=args.used_metric,
                               probe=args.probe, path=out / "compare.png")
    import matplotlib.pyplot as plt

    plt.close(res.figure)
    res.table.to_csv(out / "compare.csv", index=False)
    res.per_k.to_csv(out / "compare_per_k.csv", index=False)
    (out / "compare.txt").write_text(res.summary + "\n")
    print(res.per_k.round(3).to_string(index=False))
    print(res.summary)
    return 0


def register(subparsers) -> None:
    """Add ``evaluate-used`` and ``compare`` to the main CLI."""
    p = subparsers.add_parser("evaluate-used", help="intervene on the top-k neurons of each ranking: what the "
                                                    "model uses (against bottom-k and random-k)")
    p.add_argument("--model", required=True, help="minilm, a Hugging Face folder or name, or a built-in test "
                                                  "model: planted, agreement (trained in seconds), tiny")
    p.add_argument("--data", required=True, help="a .conllu file, a word<TAB>label file, or synthetic[:N]")
    p.add_argument("--fit-data", default=None, help="corpus for class means and ranker fitting (default: --data)")
    p.add_argument("--attribute", required=True, help="e.g. Number, upos")
    p.add_argument("--rankings", required=True,
                   help="comma-separated ranker names (probeless, linear, gaussian, ...) and/or ranking files "
                        "(name=path.txt|.json|.csv, neurons best first)")
    p.add_argument("--site", default="mlp.post")
    p.add_argument("--layer", type=int, default=None, help="layer the ranker names rank (needed for names)")
    p.add_argument("--ks", default="1,2,5,10,20,50", help="comma-separated k values")
    p.add_argument("--method", default="translate", choices=["translate", "zero", "mean", "resample"])
    p.add_argument("--readout", default="auto", choices=["auto", "identity", "agreement", "divergence"])
    p.add_argument("--positions", default="attribute", choices=["attribute", "all"])
    p.add_argument("--alpha", default="1.0", help="translation strength, or 'scaled' (beta decaying with rank)")
    p.add_argument("--beta", type=float, default=8.0)
    p.add_argument("--n-random", type=int, default=3, help="random-k draws per k")
    p.add_argument("--no-bottom", action="store_true", help="skip the bottom-k baseline")
    p.add_argument("--n-bootstrap", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=32, help="sentences per batch")
    p.add_argument("--strategy", default="auto", choices=["auto", "batched", "cached", "naive"])
    p.add_argument("--out", required=True)
    p.add_argument("--device", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_evaluate_used)

    p = subparsers.add_parser("compare", help="encoded versus used curves side by side, and where they disagree")
    p.add_argument("--encoded", required=True, help="CSV from evaluate-encoded (or any ranking/k/metric table)")
    p.add_argument("--used", required=True, help="CSV from evaluate-used")
    p.add_argument("--encoded-metric", default=None, help="default: accuracy")
    p.add_argument("--used-metric", default=None, help="default: the readout's first metric")
    p.add_argument("--probe", default="logistic", help="which probe's encoded curves (if the table has several)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_compare)


# ------------------------------------------------------------------------------------------------- demo
DEMO_RANKERS = ("probeless", "linear", "gaussian")
DEMO_KS = (1, 2, 5, 10, 20, 50, 100)


def _encoded_for(acts, attribute: str, rankers: Sequence[str], ks: Sequence[int], seed: int) -> pd.DataFrame:
    from .encoded import evaluate_encoded

    return evaluate_encoded(acts, attribute, rankers=list(rankers), ks=list(ks), probes=("logistic",),
                            control=False, seed=seed)


def _one(model, name: str, corpus, attribute: str, layer: int, out: Path, seed: int, readout, ks: Sequence[int],
         rankers: Sequence[str], encoded: pd.DataFrame | None, progress: bool, **kw) -> dict:
    """Encoded and used curves for one (model, attribute), their comparison, files under ``out``."""
    import matplotlib.pyplot as plt

    from .extraction import extract
    from .used import compare_encoded_used, evaluate_used, plot_used

    t0 = time.perf_counter()
    acts = extract(model, corpus, site="mlp.post", layers=[layer], progress=progress)
    ks = [k for k in ks if k <= acts.n_neurons]
    if encoded is None or "orders" not in encoded.attrs:
        encoded = _encoded_for(acts, attribute, rankers, ks, seed)
    t1 = time.perf_counter()
    used = evaluate_used(model, corpus, attribute, encoded, ks, readout=readout, seed=seed, progress=progress, **kw)
    t2 = time.perf_counter()
    stem = f"{name}_{attribute}"
    encoded.to_csv(out / f"encoded_{stem}.csv", index=False)
    used.to_csv(out / f"used_{stem}.csv", index=False)
    plt.close(plot_used(used, out / f"used_{stem}.png"))
    cmp = compare_encoded_used(encoded, used, path=out / f"compare_{stem}.png")
    plt.close(cmp.figure)
    cmp.per_k.to_csv(out / f"compare_{stem}.csv", index=False)
    (out / f"compare_{stem}.txt").write_text(cmp.summary + "\n")
    from .cli_rank import top_neurons_table  # which neurons each used top-k held, for the report's neuron pages

    top_neurons_table(encoded.attrs.get("neurons") or acts.neurons, encoded.attrs["orders"],
                      n=max(ks)).to_csv(out / f"used_{stem}_top_neurons.csv", index=False)
    return dict(layer=layer, readout=used.attrs["readout"], forward_passes=used.attrs["forward_passes"],
                strategy=used.attrs["strategy"], encoded_seconds=round(t1 - t0, 1), used_seconds=round(t2 - t1, 1),
                summary=cmp.summary)


def demo_used(out_dir: "str | Path", seed: int = 0, minilm_model=None, encoded_tables: dict | None = None,
              sentences: int = 300, progress: bool = False) -> dict:
    """The demo's used stage: encoded versus used for Number and UPOS on the small agreement decoder (agreement
    readout, trained here) and on MiniLM (divergence readout: its MLM head is untrained).

    ``minilm_model``: the loaded MiniLM (else it is loaded if installed; skipped if not). ``encoded_tables``:
    ``{(model_name, attribute): evaluate_encoded table}`` to reuse (needs ``attrs['orders']``), else the encoded
    curves are computed here with the same rankers on the same layer. Writes CSV/PNG/TXT files and
    ``used_summary.json`` under ``out_dir``; returns the summary.
    """
    from .agreement import train_agreement_decoder
    from .corpus import Corpus
    from .readouts import AgreementReadout

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    encoded_tables = encoded_tables or {}
    corpus = Corpus.synthetic(sentences, seed=seed + 7)
    summary: dict[str, Any] = {}

    t0 = time.perf_counter()
    decoder = train_agreement_decoder(seed=seed)
    summary["agreement_decoder"] = dict(report=str(decoder.agreement), seconds=round(time.perf_counter() - t0, 1))
    for attr in ("Number", "upos"):
        readout = AgreementReadout(form_attribute="Number")  # UPOS neurons, judged by their effect on agreement
        summary[f"agreement/{attr}"] = _one(decoder, "agreement", corpus, attr, 0, out, seed, readout,
                                            DEMO_KS, DEMO_RANKERS, encoded_tables.get(("agreement", attr)),
                                            progress, alpha=8.0)
    model = minilm_model
    if model is None:
        try:
            from . import models

            model = models.load("minilm", device="cpu")
        except ImportError as exc:
            summary["minilm"] = f"skipped: {exc}"
    if model is not None:
        from .adapter import ModelAdapter

        adapter = ModelAdapter.wrap(model)
        name = "minilm" if adapter.is_encoder else adapter.name.replace("/", "_")
        layer = adapter.n_layers // 2
        for attr in ("Number", "upos"):
            summary[f"{name}/{attr}"] = _one(model, name, corpus, attr, layer, out, seed, "divergence", DEMO_KS,
                                             DEMO_RANKERS, encoded_tables.get((name, attr)), progress,
                                             alpha="scaled", beta=8.0, n_random=2)
    (out / "used_summary.json").write_text(json.dumps(summary, indent=2, default=str))
    for key, val in summary.items():
        if isinstance(val, dict) and "summary" in val:
            print(f"[used] {key}: {val['summary']}")
    return summary


__all__ = ["register", "demo_used", "load_model", "parse_rankings", "read_ranking_file", "BUILTIN_MODELS"]
