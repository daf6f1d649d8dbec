"""The report's files: which pages exist, what they say, result objects as input, clear errors."""

from __future__ import annotations

import html as html_lib
import re
from html.parser import HTMLParser

import pandas as pd
import pytest

import tl_neuronprobe as tnp
from tl_neuronprobe.evaluation.encoded import EncodedConfig
from tl_neuronprobe.evaluation.results import load_result, mark
from tl_neuronprobe.reporting import collect, report
from tl_neuronprobe.evaluation.used import Baselines, UsedConfig

from report_helpers import TRIGGER


class Tokens(HTMLParser):
    """The coloured tokens of a page: (sentence id, word, data-value, style) in document order."""

    def __init__(self):
        super().__init__()
        self.rows, self.sentence, self._open = [], None, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "p" and "ctx" in a.get("class", ""):
            self.sentence = int(a["data-sentence"])
        if tag == "span" and "tok" in a.get("class", "").split():
            self._open = a

    def handle_data(self, data):
        if self._open is not None:
            self.rows.append((self.sentence, data, float(self._open["data-value"]), self._open["style"]))
            self._open = None


def tokens_of(page) -> list:
    parser = Tokens()
    parser.feed(page.read_text())
    return parser.rows


def test_one_page_per_neuron_in_any_top_list(results, site):
    """Pages = the union of the encoded, used and textualized top lists, read independently from the CSVs."""
    want = set()
    for csv in (results / "encoded").glob("*_top_neurons.csv"):
        want |= set(pd.read_csv(csv)["neuron"])
    used = pd.read_csv(results / "used" / "used_planted_Number_top_neurons.csv")
    want |= set(used.loc[used["rank"] <= 10, "neuron"])
    want |= set(pd.read_csv(results / "textualize" / "textualize.csv")["neuron"])
    have = {p.stem for p in (site.parent / "neurons").glob("*.html")}
    assert have == want
    index = site.read_text()
    assert all(f'href="neurons/{n}.html"' in index for n in want)


def test_tokens_carry_the_activations(results, site):
    """Every coloured word's value is the neuron's activation on that word; another neuron's values do not fit."""
    acts = tnp.Activations.load(results / "activations")
    rows = tokens_of(site.parent / "neurons" / f"{TRIGGER}.html")
    assert len(rows) > 10
    col, other = acts.columns([TRIGGER, "L0.N0"])
    mismatched = 0
    for sentence in {r[0] for r in rows}:
        mine = [r for r in rows if r[0] == sentence]
        idx = [i for i, s in enumerate(acts.sentence_ids) if s == sentence]
        assert [r[1] for r in mine] == [acts.words[i] for i in idx]
        assert [r[2] for r in mine] == pytest.approx(acts.X[idx, col].tolist(), rel=1e-5, abs=1e-6)
        mismatched += [r[2] for r in mine] != pytest.approx(acts.X[idx, other].tolist(), rel=1e-5, abs=1e-6)
        for _, _, value, style in mine:  # red for positive, blue for negative
            assert ("220,38,38" in style) == (value >= 0)
    assert mismatched > 0


def test_planted_trigger_word_tops_its_contexts(site):
    """Planted: L1.N57 fires on "cabinet" alone, so every positive context is chosen for "cabinet";
    control: a Number neuron's contexts are not."""
    def focus_words(name):
        html = (site.parent / "neurons" / f"{name}.html").read_text()
        positive = html.split('id="positive"')[1].split('id="negative"')[0]
        return re.findall(r'class="tok focus"[^>]*>([^<]+)<', positive)

    assert set(focus_words(TRIGGER)) == {"cabinet"}
    assert "cabinet" not in focus_words("L1.N5")


def test_neuron_page_sections(site):
    page = (site.parent / "neurons" / f"{TRIGGER}.html").read_text()
    assert '("blocks.1.mlp.hook_post", read_L1_N57)' in page.replace("&#34;", '"')
    assert "value[..., 57]" in page
    assert "the noun cabinet" in page and "singular determiner this" not in page  # its own description only
    assert "best corpus window" in page and "cabinet" in page.rpartition("best corpus window")[2]
    n5 = (site.parent / "neurons" / "L1.N5.html").read_text()
    assert "singular determiner this" in n5
    assert re.search(r"<td>planted</td><td>Number</td><td>probeless</td><td>1</td><td>1</td>", n5)  # effect row


def test_overview_has_run_corpus_and_comparisons(results, site):
    index = site.read_text()
    for text in ("planted synthetic", "120 sentences", "Sing 229, Plur 176", "blocks.0.mlp.hook_post",
                 "tl-neuronprobe rerun ", "Encoded (accuracy) versus used", "L1.N5"):
        assert text in index, text
    imgs = re.findall(r'<img src="([^"]+)"', index)
    assert len(imgs) >= 4 and all((site.parent / i).stat().st_size > 1000 for i in imgs)
    size = sum(p.stat().st_size for p in site.parent.rglob("*") if p.is_file())
    assert size < 3_000_000


def test_result_objects_give_full_ranks_and_effects(planted_run, tmp_path):
    """From objects: an encoded table's fitted orders give every neuron's rank beyond the top 10, and a used table
    run on those orders gives the neuron's intervention effect."""
    model, corpus = planted_run["model"], planted_run["corpus"]
    acts = tnp.Activations.load(planted_run["out"] / "activations").select(layer=1)
    enc = tnp.evaluate_encoded(acts, "Number", ["probeless", "random"],
                               EncodedConfig(ks=[1, 5], control=False, probes=["logistic"]))
    used = tnp.evaluate_used(model, corpus, "Number", enc,
                             UsedConfig(ks=[1, 2], n_bootstrap=50, baselines=Baselines(bottom=False, n_random=1)),
                             progress=False)
    descriptions = mark(pd.DataFrame(dict(neuron=["L1.N3"], description=["planted text"], score=[0.5])),
                        "descriptions")
    objects = {"acts": acts, "encoded": enc, "planted/Number": used, "descriptions": descriptions,
               "settings": {"seed": 3}}
    index = report(objects, tmp_path / "r")
    order = collect(objects).orders["Number"]["random"]
    html = (tmp_path / "r" / "neurons" / "L1.N3.html").read_text()
    rank = order.index("L1.N3") + 1
    assert rank > 10 and re.search(rf"<td>Number</td><td>random</td><td>{rank}</td>\s*<td>{len(order)}</td>", html)
    assert "planted text" in html and '"seed": 3' in html_lib.unescape(index.read_text())
    first = order[0]  # random's first neuron was intervened on alone (k=1)
    page = (tmp_path / "r" / "neurons" / f"{first}.html").read_text()
    ut = getattr(used, "table", used)
    value = ut[(ut.ranking == "random") & (ut.selection == "top") & (ut.k == 1)].value.iloc[0]
    assert re.search(rf"<td>planted</td><td>Number</td><td>random</td><td>1</td><td>1</td>\s*<td>\w+</td>"
                     rf"<td>{value:.4g}</td>", page)
    assert f"<td>planted</td><td>Number</td><td>random</td><td>{rank}</td>" not in html  # rank > every k: no effect


def test_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        report(tmp_path / "nothing", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no activations"):
        report(tmp_path / "empty", tmp_path / "out")
    with pytest.raises(TypeError, match="cannot add int"):
        report([3], tmp_path / "out")
    with pytest.raises(ValueError, match="does not say what it is"):
        report({"d": pd.DataFrame(dict(neuron=["L0.N1"], text=["x"]))}, tmp_path / "out")
    (tmp_path / "empty" / "layer_stats.csv").write_text("site,layer,mean,std\nmlp.post,0,0,1\n")
    (tmp_path / "empty" / "textualize").mkdir()
    (tmp_path / "empty" / "textualize" / "textualize.csv").write_text("neuron,text,activation,corpus_max\n")
    (tmp_path / "empty" / "descriptions.csv").write_text("neuron,label\nL0.N1,x\n")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['description'\]"):
        report(tmp_path / "empty", tmp_path / "out")


def test_tables_without_activations(results, tmp_path):
    """Only result tables: neuron pages still exist (ranks, textualization) and say the activations are missing."""
    top = mark(pd.read_csv(results / "encoded" / "encoded_Number_top_neurons.csv"), "top_neurons", "Number")
    text = mark(pd.read_csv(results / "textualize" / "textualize.csv"), "textualize")
    index = report([load_result(results / "encoded" / "encoded_Number.csv"), top, text], tmp_path / "r")
    page = (index.parent / "neurons" / f"{TRIGGER}.html").read_text()
    assert "not in the saved activations" in page and "best corpus window" in page
    assert {p.stem for p in (index.parent / "neurons").glob("*.html")} == set(top.neuron) | set(text.neuron)
