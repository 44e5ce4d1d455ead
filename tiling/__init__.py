"""lut.tiling: patch grids, windowed scene reading, map writing and the scene classification pipeline."""
