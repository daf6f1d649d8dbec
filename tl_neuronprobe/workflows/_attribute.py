"""The ``attribute`` job: a used ranking of every neuron (attribution patching, verified by exact patching), and
its per-neuron comparison with an encoded ranking; not for the estimate itself (:mod:`..evaluation.attribution`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from .. import models
from ..core.config import write_summary
from ..core.plotting import pyplot
from ..data.corpus import Corpus
from ..evaluation.attribution import Attribution, AttributionConfig, attribute_used
from ..evaluation.compare import NeuronCompareConfig, NeuronComparison, compare_per_neuron
from ..evaluation.results import kind_of, load_result, load_table
from ._used import read_ranking_file

__all__ = ["attribute_job", "read_encoded"]

#: what the job writes under ``out_dir`` (stems: ``.csv`` + ``.meta.json``, ``.png``; the comparison also ``.txt``)
ATTRIBUTION, PER_NEURON = "attribution", "per_neuron"
#: rows of the attribution printed when ``progress``
SHOWN = 10


def read_encoded(path: "str | Path") -> Any:
    """The encoded side of a per-neuron comparison from a file: a saved ``EncodedResult`` (its CSV with
    ``.meta.json``, as ``evaluate-encoded`` writes it), else a ranking file (``.txt``, ``.json`` or ``.csv`` of
    neurons, best first, as ``tl-neuronprobe rank`` writes them) as ranking name -> neurons."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"encoded file {path} does not exist")
    if path.suffix.lower() == ".csv":
        kind = kind_of(load_table(path))
        if kind == "encoded":
            return load_result(path)
        if kind is not None and kind != "top_neurons":
            raise ValueError(f"{path} holds a {kind!r} result; --encoded takes an encoded result (from "
                             "evaluate-encoded) or a ranking file")
    return read_ranking_file(path)


def _compare_config(compare: "NeuronCompareConfig | Mapping | None") -> NeuronCompareConfig:
    if compare is None:
        return NeuronCompareConfig()
    if isinstance(compare, Mapping):  # from summary.json
        return NeuronCompareConfig.from_dict(dict(compare))
    if not isinstance(compare, NeuronCompareConfig):
        raise TypeError(f"compare must be a NeuronCompareConfig, got {type(compare).__name__}")
    return compare


def _write_comparison(encoded: Any, result: Attribution, out: Path, config: NeuronCompareConfig) -> NeuronComparison:
    comparison = compare_per_neuron(encoded, result, config)
    comparison.save(out / f"{PER_NEURON}.csv")
    pyplot().close(comparison.plot(out / f"{PER_NEURON}.png"))
    (out / f"{PER_NEURON}.txt").write_text(str(comparison) + "\n")
    return comparison


def _print(result: Attribution, comparison: "NeuronComparison | None", out: Path) -> None:
    shown = result.table.sort_values("rank", kind="stable").head(SHOWN)
    print(shown.to_string(index=False))
    e = result.extra
    print(f"{e.get('readout')} readout ({e.get('metric')}), {e.get('edit')} edit: {len(result.table)} neurons in "
          f"{e.get('seconds')} s; verified {e.get('n_verified')}: Spearman {e.get('spearman', float('nan')):.3f}, "
          f"top precision {e.get('top_precision', float('nan')):.3f}")
    if comparison is not None:
        print(comparison)
    print(f"written to {out}")


def attribute_job(model: str, corpus: str, attribute: str, out_dir: "str | Path",
                  config: "AttributionConfig | None" = None, *, encoded: "str | Path | None" = None,
                  compare: "NeuronCompareConfig | Mapping | None" = None, fit_corpus: "str | None" = None,
                  device: "str | None" = None, progress: bool = True) -> Attribution:
    """:func:`~tl_neuronprobe.attribute_used` from names, and the per-neuron comparison with an encoded ranking.

    Parameters
    ----------
    model : str
        A :func:`tl_neuronprobe.models.load` name (built-in models are built with ``config.seed``).
    corpus : str
        A :meth:`Corpus.load` spec: the evaluated sentences (means and donors are fitted on them too).
    attribute : str
        The attribute whose words are edited.
    out_dir : str or Path
        Where to write.
    config : AttributionConfig, optional
        The edit, readout, site, layers, sentences, samples, verification, seed and batching.
    encoded : str or Path, optional
        An encoded result saved by ``evaluate-encoded`` (``encoded_<attribute>.csv``) or a ranking file: compare
        it with the attribution neuron by neuron.
    compare : NeuronCompareConfig, optional
        The comparison's encoded ranking and ``k`` (default ``NeuronCompareConfig()``).
    fit_corpus : str, optional
        Fit means and donors on this corpus and evaluate ``corpus`` (``test=``).
    device : str, optional
        Where the model runs.
    progress : bool
        Progress bars, and the top neurons and the comparison printed.

    Returns
    -------
    Attribution
        Also written: ``attribution.csv`` (+ ``.meta.json``: reload with ``load_result``), ``attribution.png``
        (estimate against exact patching), with ``encoded`` ``per_neuron.csv`` (+ ``.meta.json``),
        ``per_neuron.png`` and ``per_neuron.txt``, and ``summary.json`` (stage ``"attribute"``, for
        ``tl-neuronprobe rerun``).

    Examples
    --------
    >>> import tempfile
    >>> from tl_neuronprobe.workflows import attribute_job
    >>> from tl_neuronprobe.evaluation.attribution import AttributionConfig, Verify
    >>> out = tempfile.mkdtemp()
    >>> config = AttributionConfig(edit=tnp.interventions.Zero(), layers=(1,), verify=Verify(top=2, n_random=0))
    >>> result = attribute_job("planted", "synthetic:40", "Number", out, config, progress=False)
    >>> sorted(str(n) for n in result.rankings["attribution"][:2])
    ['L1.N23', 'L1.N5']
    """
    config = AttributionConfig() if config is None else config
    if not isinstance(config, AttributionConfig):
        raise TypeError(f"config must be an AttributionConfig, got {type(config).__name__}")
    compare_config = _compare_config(compare)
    encoded_side = read_encoded(encoded) if encoded is not None else None  # a bad file fails before the run
    inputs = dict(model=model, corpus=corpus, attribute=attribute, out_dir=str(out_dir),
                  encoded=None if encoded is None else str(encoded),
                  compare=None if compare is None else compare_config.to_dict(), fit_corpus=fit_corpus)
    loaded = models.load(model, device=device, seed=config.seed)
    evaluated = Corpus.load(corpus, seed=config.seed)
    if fit_corpus:
        result = attribute_used(loaded, Corpus.load(fit_corpus, seed=config.seed + 1), attribute, config,
                                test=evaluated, progress=progress)
    else:
        result = attribute_used(loaded, evaluated, attribute, config, progress=progress)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result.save(out / f"{ATTRIBUTION}.csv")
    pyplot().close(result.plot(out / f"{ATTRIBUTION}.png"))
    comparison = _write_comparison(encoded_side, result, out, compare_config) if encoded_side is not None else None
    write_summary(out, "attribute", config, inputs, attribution=result.extra,
                  per_neuron=comparison.counts() if comparison is not None else None)
    if progress:
        _print(result, comparison, out)
    return result
