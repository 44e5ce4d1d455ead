"""`lut demo`: the whole chain offline on synthetic data."""

from __future__ import annotations

from pathlib import Path

import click

from .options import show_progress


@click.command()
@click.option("-o", "--output", default="demo", show_default=True, type=click.Path(path_type=Path))
@click.option("--images", default=1200, show_default=True, type=click.IntRange(60))
@click.option("--epochs", default=8, show_default=True, type=click.IntRange(1))
@click.option("--scene-size", default=512, show_default=True, type=click.IntRange(32))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--overwrite", is_flag=True, help="Replace the outputs of an earlier demo.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def demo(output, images, epochs, scene_size, seed, overwrite, quiet):
    """Run finetune -> export -> classify offline on synthetic data and score the map against its truth."""
    from .demo import DemoConfig, run_demo

    result = run_demo(DemoConfig(output=output, images=images, epochs=epochs, scene_size=scene_size, seed=seed,
                                 overwrite=overwrite, progress=show_progress(quiet)))
    click.echo(f"map accuracy against the scene's ground truth: {result.map_accuracy:.3f} "
               f"(patch test accuracy {result.test_accuracy:.3f})")
    total = result.change_scores[-1]
    click.echo(f"change mapped: {total['mapped_km2']:.3f} km2 against {total['true_km2']:.3f} km2 true "
               f"({total['error_percent']:+.1f}%)")
    inside = sum(row["covered"] for row in result.assessment)
    click.echo(f"areas: {inside} of {len(result.assessment)} true class areas inside their 95% confidence intervals "
               f"(demo/assessment/assessment.md)")
    for name, path in (("bundle", result.bundle), ("onnx", result.onnx_dir), ("scene", result.scene),
                       ("truth", result.truth), ("map", result.landuse), ("summary", result.summary),
                       ("preview", result.preview), ("change", result.change),
                       ("change preview", result.change_preview)):
        click.echo(f"  {name:<15} {path}")
