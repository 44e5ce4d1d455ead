import pytest

from lut.tiling.grid import PatchGrid
from lut.toolkit.errors import LutError


def test_grid_covers_the_scene_without_cropping():
    g = PatchGrid(height=70, width=45, patch=32, stride=32)
    assert (g.window_rows, g.window_cols) == (3, 2)
    assert (g.cell_rows, g.cell_cols) == (3, 2)
    assert g.padded_width == 64 >= 45
    assert list(g.cells_final_after(0)) == [0] and list(g.cells_final_after(2)) == [2]


def test_overlapping_grid_has_stride_sized_cells():
    g = PatchGrid(height=64, width=100, patch=32, stride=16)
    assert g.span == 2
    assert (g.window_rows, g.window_cols) == (3, 6)
    assert (g.cell_rows, g.cell_cols) == (4, 7)
    assert list(g.cells_final_after(1)) == [1] and list(g.cells_final_after(2)) == [2, 3]
    assert (g.window_cols - 1) * g.stride + g.patch >= g.width


def test_scene_smaller_than_a_patch_is_one_window():
    g = PatchGrid(height=10, width=20, patch=32, stride=32)
    assert g.windows == 1 and (g.cell_rows, g.cell_cols) == (1, 1)


@pytest.mark.parametrize("stride", [0, 12, 40])
def test_stride_must_divide_the_patch(stride):
    with pytest.raises(LutError):
        PatchGrid(64, 64, 32, stride)


def test_class_colours_follow_land_use_names_and_stay_distinct():
    from lut.tiling.writer import NODATA, class_colours
    from lut.toolkit.synthetic import CLASS_COLOURS

    table = class_colours(["aGrass", "bField", "cIndustry", "dRiverLake", "eForest", "fResident", "gParking"])
    assert table[3][:3] == CLASS_COLOURS["water"] and table[4][:3] == CLASS_COLOURS["forest"]
    assert table[1][:3] == CLASS_COLOURS["cropland"] and table[2][:3] == CLASS_COLOURS["urban"]
    assert len({table[i][:3] for i in range(7)}) == 7
    assert table[NODATA][3] == 0
