"""lut.toolkit: datasets, backbones, transfer strategies, training, DINO and the `lut` CLI."""
