"""The `lut` command line: each command parses options (click types) and calls one library function.

One module per command group, as `rasterio/rio/` does: `group` (errors, signals, warnings), `options`
(shared option groups and parameter types), then the commands. Nothing here imports torch until a
training command runs, so `lut --help` and the mapping commands stay light.
"""

from __future__ import annotations

from .assess_commands import assess
from .demo_command import demo
from .export_command import export_cmd
from .group import lut
from .map_commands import change, classify, composite, vectorize
from .train_commands import compare, finetune, pretrain

for _command in (finetune, export_cmd, classify, change, composite, vectorize, assess, demo, pretrain, compare):
    lut.add_command(_command)


def main() -> None:
    """The `lut` console script."""
    lut(prog_name="lut")


__all__ = ["lut", "main"]
