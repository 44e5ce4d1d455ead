import numpy as np
import pytest

from lut.tiling.grid import PatchGrid, window_origins
from lut.toolkit.core.errors import LutError


def test_last_window_is_aligned_inward_never_padded():
    g = PatchGrid(height=70, width=45, patch=32, stride=32)
    assert g.y_origins.tolist() == [0, 32, 38] and g.x_origins.tolist() == [0, 13]
    assert all(o + 32 <= 70 for o in g.y_origins) and all(o + 32 <= 45 for o in g.x_origins)
    assert g.y_edges.tolist() == [0, 32, 38, 64, 70] and g.x_edges.tolist() == [0, 13, 32, 45]
    assert (g.window_rows, g.window_cols, g.cell_rows, g.cell_cols) == (3, 2, 4, 3)
    # window row 1 covers cells 1..2, and cell 1 is final after it; the shifted row 2 covers cells 2..3
    assert g.row_cells.tolist() == [[0, 1], [1, 3], [2, 4]]
    finals = [list(g.cells_final_after(r)) for r in range(3)]
    assert finals == [[0], [1], [2, 3]] and sum(finals, []) == list(range(g.cell_rows))


def test_overlapping_grid_cells_lie_between_window_edges():
    g = PatchGrid(height=64, width=100, patch=32, stride=16)
    assert g.x_origins.tolist() == [0, 16, 32, 48, 64, 68]
    assert (g.window_rows, g.window_cols) == (3, 6)
    assert g.cell_heights().tolist() == [16, 16, 16, 16]
    assert g.cell_widths().sum() == 100 and g.cell_heights().sum() == 64
    assert list(g.cells_final_after(1)) == [1] and list(g.cells_final_after(2)) == [2, 3]
    # every cell is covered by at least one window of its row range
    cover = np.zeros(g.cell_cols, int)
    for a, b in g.col_cells:
        cover[a:b] += 1
    assert cover.min() >= 1


def test_scene_smaller_than_a_patch_is_one_window_down_to_a_quarter():
    g = PatchGrid(height=10, width=20, patch=32, stride=32)
    assert g.windows == 1 and (g.cell_rows, g.cell_cols) == (1, 1)
    with pytest.raises(LutError, match="too small"):
        PatchGrid(7, 200, 32, 32)


@pytest.mark.parametrize("stride", [0, 40])
def test_stride_must_be_between_one_and_the_window(stride):
    with pytest.raises(LutError):
        PatchGrid(64, 64, 32, stride)


def test_window_origins_cover_any_size_exactly():
    for size in range(32, 140):
        for stride in (8, 12, 32):
            o = window_origins(size, 32, stride)
            assert o[0] == 0 and o[-1] == size - 32 and np.all(np.diff(o) <= stride)


def test_class_colours_follow_land_use_names_and_stay_distinct():
    from lut.tiling.writer import NODATA, class_colours
    from lut.toolkit.core.classes import CLASS_COLOURS

    table = class_colours(["aGrass", "bField", "cIndustry", "dRiverLake", "eForest", "fResident", "gParking"])
    assert table[3][:3] == CLASS_COLOURS["water"] and table[4][:3] == CLASS_COLOURS["forest"]
    assert table[1][:3] == CLASS_COLOURS["cropland"] and table[2][:3] == CLASS_COLOURS["urban"]
    assert len({table[i][:3] for i in range(7)}) == 7
    assert table[NODATA][3] == 0
