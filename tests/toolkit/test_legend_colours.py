"""The legend's fallback palette is matplotlib's tab20, without importing matplotlib to map."""

from lut.toolkit.gis.legend import TAB20, class_colours


def test_the_fallback_palette_is_tab20_as_lut_always_drew_it():
    import matplotlib

    tab = matplotlib.colormaps["tab20"]
    assert list(TAB20) == [tuple(int(255 * v) for v in tab(j)[:3]) for j in range(20)]
    colours = class_colours(["forest", "alpha", "beta", "forest2"])
    assert colours[1][:3] in TAB20 and len({c[:3] for k, c in colours.items() if k != 255}) == 4
