"""`lut assess design` and `lut assess estimate`: a probability sample of a map, and areas with confidence
intervals from its reference labels (Olofsson et al. 2014). Neither imports torch."""

from __future__ import annotations

from pathlib import Path

import click


@click.group()
def assess():
    """Publishable areas: a stratified random sample (design), then estimates from its labels (estimate)."""


@assess.command()
@click.argument("map_path", metavar="MAP", type=click.Path(path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="Sample GeoPackage; NAME.csv, NAME.design.json and NAME.qml (QGIS style) go beside it.")
@click.option("--n", "n", default=None, type=click.IntRange(2),
              help="Total sample size (default: from --target-se and --expected-ua, Olofsson eq. 13).")
@click.option("--target-se", default=0.01, show_default=True, type=click.FloatRange(0, 1, min_open=True,
                                                                                      max_open=True),
              help="Target standard error of overall accuracy, when --n is not given.")
@click.option("--expected-ua", default="0.8", show_default=True,
              help="Anticipated user's accuracy: one value, or class=value,... (others 0.8).")
@click.option("--allocation", default="compromise", show_default=True,
              type=click.Choice(["compromise", "proportional", "equal"]),
              help="compromise: --min-per-stratum each, the rest in proportion to area (Olofsson's advice).")
@click.option("--min-per-stratum", default=50, show_default=True, type=click.IntRange(2),
              help="Units every stratum gets at least (compromise allocation).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--overwrite", is_flag=True, help="Replace a sample (and its files) that lut wrote.")
def design(map_path, output, n, target_se, expected_ua, allocation, min_per_stratum, seed, overwrite):
    """Draw a stratified random sample of MAP's pixels (strata: its classes, or a change raster's transitions)."""
    from lut.toolkit.assess.design import DesignConfig, design as run

    record = run(DesignConfig(map_path, output, n, target_se, expected_ua, allocation, min_per_stratum, seed,
                              overwrite))
    click.echo(f"{'stratum':<24} {'pixels':>12} {'km2':>10} {'n':>6}")
    for s in record["strata"]:
        km2 = "-" if s["km2"] is None else f"{s['km2']:.3f}"
        click.echo(f"{s['name']:<24} {s['pixels']:>12,} {km2:>10} {s['n']:>6}")
    click.echo(f"{record['n']} points ({record['n_from']}, {allocation} allocation, seed {seed})")
    click.echo(f"sample: {output} (and {output.with_suffix('.csv').name}); label the `reference` field, then "
               f"run lut assess estimate {map_path} {output} -o DIR")


@assess.command()
@click.argument("map_path", metavar="MAP", type=click.Path(path_type=Path))
@click.argument("sample", type=click.Path(path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="Directory: assessment.json, classes.csv, error matrices, assessment.md, areas.png.")
@click.option("--reference", default="reference", show_default=True, help="The column of reference labels.")
@click.option("--overwrite", is_flag=True, help="Replace an assessment that lut wrote.")
def estimate(map_path, sample, output, reference, overwrite):
    """Accuracy and area (km² ± 95% CI) of MAP from a labelled SAMPLE (GeoPackage or CSV)."""
    from lut.toolkit.assess.estimate import EstimateConfig, estimate_areas as run

    record = run(EstimateConfig(map_path, sample, output, reference, overwrite))
    click.echo((output / "assessment.md").read_text().split("\n", 1)[1].rsplit("References:", 1)[0].rstrip())
    click.echo(f"assessment: {output / 'assessment.json'} ({record['labelled_points']} labelled points)")
