import pytest

import tl_neuronprobe as tnp
from tl_neuronprobe.core.neurons import hook_name, site_of_hook


def test_parse_short_and_hook_forms():
    assert tnp.Neuron.parse("L3.N1207") == tnp.Neuron(3, 1207, "mlp.post")
    assert tnp.Neuron.parse("blocks.3.mlp.hook_post:1207") == tnp.Neuron(3, 1207, "mlp.post")
    assert tnp.Neuron.parse("blocks.2.hook_resid_post:5") == tnp.Neuron(2, 5, "resid.post")
    assert tnp.Neuron.parse("L2.N5@attn.z") == tnp.Neuron(2, 5, "attn.z")
    assert tnp.Neuron(3, 1207).hook_name == "blocks.3.mlp.hook_post"


@pytest.mark.parametrize("site", list(tnp.SITES))
def test_round_trip_every_site(site):
    n = tnp.Neuron(4, 17, site)
    assert tnp.Neuron.parse(str(n)) == n
    assert tnp.Neuron.parse(f"{n.hook_name}:17") == n
    assert site_of_hook(hook_name(site, 4)) == (site, 4)


def test_parse_list():
    assert tnp.parse_neurons("L1.N2, L3.N4") == [tnp.Neuron(1, 2), tnp.Neuron(3, 4)]


@pytest.mark.parametrize("bad", ["L3", "N3", "layer3.neuron4", "blocks.3.mlp.hook_banana:3", "L3.N4@mlp.banana"])
def test_bad_neuron_specs_name_the_problem(bad):
    with pytest.raises(ValueError, match="neuron|site|hook"):
        tnp.Neuron.parse(bad)


def test_unknown_site_lists_known_sites():
    with pytest.raises(ValueError, match="mlp.post"):
        tnp.Neuron(0, 0, "mlp.banana")
