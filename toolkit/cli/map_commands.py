"""Mapping commands: `classify` (one scene or many), `change` and `vectorize`. None of them imports torch."""

from __future__ import annotations

from pathlib import Path

import click

from .options import BANDS, MAP_PRECISION, SHARD, scene_options, show_progress

@click.command()
@click.argument("scenes", nargs=-1, required=True)
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="Land-use GeoTIFF for one scene; a directory for several (maps go to "
                   "DIR/<relative path>.landuse.tif).")
@click.option("--model", default=None, type=click.Path(path_type=Path),
              help="Bundle or onnx/ folder (default: the bundle models/LATEST names).")
@click.option("--precision", default="auto", show_default=True, type=MAP_PRECISION,
              help="auto: FP16 on a GPU, INT8 on a CPU when exported, else fp32.")
@click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"]))
@click.option("--stride", default=None, type=click.IntRange(1),
              help="Window step in scene pixels (default: the window size, i.e. no overlap).")
@click.option("--bands", default=None, type=BANDS,
              help="1-based bands, e.g. 3,2,1 (default: the bundle's, else 1,2,3).")
@click.option("--scale", default="auto", show_default=True,
              type=click.Choice(["auto", "bundle", "uint8", "reflectance", "fraction", "percentile"]),
              help="auto: the scene's encoding from its pixel type and values (see README), scaled by the bundle's "
                   "rule when both are the same quantity; reflectance: values x 10000; fraction: reflectance 0..1.")
@click.option("--reflectance-offset", default=None, type=float,
              help="Added to 16-bit reflectance before /10000, e.g. -1000 (default: BOA_ADD_OFFSET metadata, else 0).")
@click.option("--nodata", default=None, type=float,
              help="Nodata value (default: the file's); NaN, inf and masked pixels are always invalid.")
@click.option("--min-valid", default=0.25, show_default=True, type=click.FloatRange(0, 1),
              help="Windows with a smaller fraction of valid pixels are written as nodata.")
@click.option("--gsd", default=None, type=float, help="The scene's metres per pixel (default: from its CRS).")
@click.option("--no-resample", is_flag=True,
              help="Read windows at the model's input size, whatever the scene's and the training chips' resolution.")
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(1))
@click.option("--threads", default=None, type=click.IntRange(1),
              help="ONNX Runtime's threads (default: the physical cores; --engine ray: --cpus-per-worker).")
@click.option("--spinning/--no-spinning", default=True, show_default=True,
              help="ONNX Runtime's threads busy-wait between operators (faster when lut has the cores to itself; "
                   "turn off where other work shares them).")
@click.option("--confidence", is_flag=True, help="Add a band with the winning probability (0-100).")
@click.option("--probabilities", is_flag=True,
              help="Also write NAME.probabilities.tif: one uint8 band per class, percent (for lut composite).")
@click.option("--cog", is_flag=True, help="Write a Cloud Optimized GeoTIFF.")
@click.option("--preview", default=None, type=click.Path(path_type=Path), help="Also write a PNG quick-look.")
@click.option("--legend", default=None, type=click.Path(path_type=Path),
              help="Also write a PNG legend (class colours, names and mapped km²) a report can include.")
@click.option("--vector", default=None, type=click.Path(path_type=Path),
              help="Also write the map's polygons to this GeoPackage (class name and km² per polygon).")
@click.option("--vector-min-area", default=None, type=float,
              help="Sieve --vector polygons smaller than this many hectares into their largest neighbour.")
@click.option("--engine", default="local", show_default=True, type=click.Choice(["local", "ray"]),
              help="Several scenes: one after another here, or one scene per Ray actor (pip install 'lut[ray]').")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1), help="--engine ray: actors.")
@click.option("--cpus-per-worker", default=1, show_default=True, type=click.IntRange(1),
              help="--engine ray: CPUs per actor, also its ONNX Runtime threads.")
@click.option("--gpus-per-worker", default=0.0, show_default=True, type=click.FloatRange(0),
              help="--engine ray: GPUs per actor (fractions share one GPU).")
@click.option("--address", default=None,
              help="--engine ray: 'auto' under ray job submit; ray://HOST:10001 for interactive use only "
                   "(default: start Ray on this machine).")
@click.option("--shard", default=None, type=SHARD,
              help="I/N: classify only shard I (0-based) of N of the sorted scene list, for SLURM/Batch/k8s arrays.")
@click.option("--retries", default=2, show_default=True, type=click.IntRange(0),
              help="--engine ray: retries of a scene whose worker process or node died.")
@click.option("--max-failures", default=None, type=click.IntRange(1), help="Stop after this many failed scenes.")
@click.option("--mosaic", default="vrt", show_default=True, type=click.Choice(["vrt", "cog"]),
              help="Several scenes: the whole-run mosaic as a GDAL VRT over the maps, or one Cloud Optimized GeoTIFF.")
@click.option("--progress", "progress_mode", default="lines", show_default=True,
              type=click.Choice(["lines", "json", "none"]), help="Several scenes: a line, or a JSON row, per scene.")
@click.option("--overwrite", is_flag=True,
              help="Replace a map (with its sidecars) that lut wrote; for -o DIR, redo a run made with another "
                   "configuration.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@scene_options
def classify(scenes, output, model, precision, device, stride, bands, scale, reflectance_offset, nodata, min_valid, gsd,
             no_resample, batch_size, threads, spinning, confidence, probabilities, cog, preview, legend, vector,
             vector_min_area, engine, workers, cpus_per_worker, gpus_per_worker, address, shard, retries, max_failures,
             mosaic, progress_mode, overwrite, quiet, scene_opts):
    """Classify SCENES into georeferenced land-use maps.

    \b
    A scene is a raster file or URL (https://, s3://), band files red=B4.tif,green=B3.tif,blue=B2.tif
    (with an optional mask=QA.tif), or a STAC Item JSON (file or URL; an ItemCollection maps each item).
    One scene and -o FILE.tif: that map. Several scenes, globs, directories or @list.txt and -o DIR:
    a resumable run with DIR/run.json, DIR/run.jsonl, a mosaic and summary.json; exit code 4 when
    some scenes failed."""
    from lut.tiling.classify import ClassifyConfig, classify_scene, format_summary

    template = ClassifyConfig(
        scene=scenes[0], output=output, probabilities=probabilities, **scene_opts, model=model, precision=precision,
        device=device, stride=stride,
        bands=bands, scale=scale, reflectance_offset=reflectance_offset, nodata=nodata,
        min_valid=min_valid, gsd=gsd, resample=not no_resample, batch_size=batch_size, threads=threads,
        spinning=spinning, confidence=confidence,
        cog=cog, preview=preview, legend=legend, vector=vector, vector_min_area=vector_min_area, overwrite=overwrite,
        progress=show_progress(quiet))
    many_options = engine != "local" or shard is not None or max_failures is not None
    if _many_scenes(scenes, output, many_options):
        return _classify_many(scenes, template, engine, workers, cpus_per_worker, gpus_per_worker, address, shard,
                              retries, max_failures, progress_mode, mosaic)
    result = classify_scene(template)
    click.echo(format_summary(result.summary))
    click.echo(f"{result.patches} patches ({result.skipped} all-nodata and {result.low_valid} below --min-valid "
               f"skipped) in {result.seconds:.1f} s, {result.patches_per_second:.1f} patches/s, {result.precision} on "
               f"{result.device} ({result.why})")
    click.echo(f"map: {result.output}\nsummary: {result.summary_path}" + (f"\npreview: {preview}" if preview else "")
               + (f"\nvector: {vector} ({result.summary['vector']['polygons']:,} polygons)" if vector else ""))
    return 0


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".jp2", ".vrt", ".img", ".gpkg", ".json")


def _many_scenes(scenes: tuple[str, ...], output: Path, many_options: bool) -> bool:
    """Several scenes (or a directory, glob or @list) or -o DIR make a many-scene run; one scene and
    -o FILE.tif is a single map."""
    one = len(scenes) == 1 and not scenes[0].startswith("@") and not any(ch in scenes[0] for ch in "*?[") \
        and not Path(scenes[0]).is_dir() and not _is_collection(scenes[0])
    to_file = output.suffix.lower() in (".tif", ".tiff") and not output.is_dir()
    if not to_file and output.suffix.lower() in IMAGE_SUFFIXES and not output.is_dir():
        raise click.UsageError(f"-o {output}: a map is a GeoTIFF (.tif); for several scenes -o names a directory, "
                               "not a file with an image extension")
    if one and to_file and many_options:
        raise click.UsageError("--engine, --shard and --max-failures apply to runs with -o DIR")
    if not one and to_file:
        raise click.UsageError(f"several scenes need -o DIR (a directory), not the file name {output}")
    return not (one and to_file)


def _is_collection(scene: str) -> bool:
    """A local STAC ItemCollection of several items: a many-scene run."""
    from lut.toolkit.core.stac import is_stac, item_specs

    return is_stac(scene) and "#" not in scene and Path(scene).is_file() and len(item_specs(scene)) > 1


def _classify_many(scenes, template, engine, workers, cpus_per_worker, gpus_per_worker, address, shard, retries,
                   max_failures, progress_mode, mosaic) -> int:
    from lut.tiling.engines import RayOptions
    from lut.tiling.many import ManyConfig, classify_many

    if template.preview is not None or template.vector is not None or template.legend is not None:
        raise click.UsageError("--preview, --legend and --vector apply to one scene; a run with -o DIR writes "
                               "DIR/mosaic.png")
    if engine == "ray" and template.threads is not None:
        raise click.UsageError("--engine ray: an actor's ONNX Runtime threads are its --cpus-per-worker; "
                               "drop --threads")
    result = classify_many(ManyConfig(
        scenes=list(scenes), output=template.output, template=template, engine=engine,
        ray=RayOptions(workers, cpus_per_worker, gpus_per_worker, address, retries), shard=shard,
        max_failures=max_failures, progress=progress_mode, overwrite=template.overwrite, mosaic=mosaic))
    mosaics = ", ".join(str(result.output / m[mosaic]) for m in result.summary["mosaics"]) or "none"
    click.echo(f"{result.ok} ok, {result.failed} failed, {result.skipped} skipped; mosaic: {mosaics}; "
               f"summary: {result.output / 'summary.json'}", err=progress_mode == "json")
    return result.exit_code



@click.command()
@click.argument("before")
@click.argument("after")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="Change GeoTIFF; NAME.json, NAME.matrix.csv, NAME.classes.csv and NAME.md go beside it.")
@click.option("--min-confidence", default=None, type=click.FloatRange(0, 100),
              help="Count a change as unchanged where either map's confidence band is below this percent.")
@click.option("--preview", default=None, type=click.Path(path_type=Path),
              help="Also write a PNG: before, after and change side by side, with gains and losses.")
@click.option("--model", default=None, type=click.Path(path_type=Path),
              help="BEFORE and AFTER are scenes: classify both with this bundle first (maps kept beside the output).")
@click.option("--precision", default="auto", show_default=True, type=MAP_PRECISION,
              help="With --model: as for classify.")
@click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"]),
              help="With --model: as for classify.")
@click.option("--bands", default=None, type=BANDS, help="With --model: the scenes' bands, as for classify.")
@click.option("--cog", is_flag=True, help="Write the change raster as a Cloud Optimized GeoTIFF.")
@click.option("--overwrite", is_flag=True, help="Replace a change raster (and its sidecars) that lut wrote.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@scene_options
def change(before, after, output, min_confidence, preview, model, precision, device, bands, cog, overwrite, quiet,
           scene_opts):
    """Compare two land-use maps (or, with --model, two scenes): change raster and from-to matrix.

    With --model, BEFORE and AFTER are scenes as classify takes them (files, URLs, band files, STAC items);
    --mask applies to both, so give each its own mask through band files (mask=) or STAC items."""
    from lut.toolkit.gis.change import ChangeConfig, compute_change

    cfg = ChangeConfig(Path(before), Path(after), output, min_confidence, preview, overwrite, cog=cog)
    if model is None:
        scene_set = scene_opts["mask"] or scene_opts["channels"] or scene_opts["href_map"] or scene_opts["mask_rule"]
        if bands is not None or precision != "auto" or device != "auto" or scene_set:
            raise click.UsageError("--bands, --precision, --device and the scene options apply only with --model "
                                   "(to classify scenes)")
        result = compute_change(cfg)
    else:
        from lut.tiling.change_scenes import change_scenes
        from lut.tiling.classify import ClassifyConfig

        template = ClassifyConfig(scene=before, output=output, model=model, precision=precision, device=device,
                                  bands=bands, progress=show_progress(quiet), **scene_opts)
        cfg = ChangeConfig(before, after, output, min_confidence, preview, overwrite, cog=cog)
        result = change_scenes(cfg, template).change
    click.echo(result.transitions.markdown(f"{result.outputs.raster.name}"), nl=False)
    click.echo("\n".join(f"{k}: {v}" for k, v in result.outputs.named().items()))


@click.command()
@click.argument("map_path", metavar="MAP", type=click.Path(path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="GeoPackage to write.")
@click.option("--min-area", default=None, type=float,
              help="Minimum mapping unit in hectares: smaller regions are sieved into their largest neighbour.")
@click.option("--min-pixels", default=None, type=click.IntRange(2), help="The same in pixels (any CRS).")
@click.option("--simplify", default=None, type=float,
              help="Simplify polygons with this tolerance in CRS units (off by default: neighbours may then "
                   "leave slivers between them).")
@click.option("--connectivity", default="4", show_default=True, type=click.Choice(["4", "8"]))
@click.option("--layer", default=None, help="Layer name (default: the map's file name).")
@click.option("--overwrite", is_flag=True, help="Replace a GeoPackage that lut wrote.")
def vectorize(map_path, output, min_area, min_pixels, simplify, connectivity, layer, overwrite):
    """Polygons of a land-use MAP, per class, with class name and area in km², as a GeoPackage."""
    from lut.toolkit.gis.vectorize import VectorizeConfig, vectorize as run

    result = run(VectorizeConfig(map_path, output, min_area, min_pixels, simplify, int(connectivity), layer,
                                 overwrite))
    for name, row in result.classes.items():
        click.echo(f"{name:<12} {row['polygons']:>8,} polygons  {row['km2']:>12.4f} km2")
    sieved = (f", {result.sieved_pixels:,} pixels sieved (regions < {result.sieve_pixels} px)"
              if result.sieve_pixels else "")
    click.echo(f"{result.polygons:,} polygons in {result.seconds:.1f} s{sieved}")
    click.echo(f"vector: {result.output} (layer {result.layer})")



@click.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="Composite GeoTIFF (class, confidence); NAME.observations.tif (valid dates), summary and "
                   "legend beside it.")
@click.option("--cog", is_flag=True, help="Write the composite's rasters as Cloud Optimized GeoTIFFs.")
@click.option("--overwrite", is_flag=True, help="Replace a composite (and its sidecars) that lut wrote.")
def composite(inputs, output, cog, overwrite):
    """One map from several dates: the mean class probabilities over each pixel's valid dates.

    INPUTS are maps classified with --probabilities (or their NAME.probabilities.tif files), two or more,
    on any grids (the first input's grid is used)."""
    from lut.tiling.classify import format_summary
    from lut.tiling.composite import CompositeConfig, composite as run

    result = run(CompositeConfig(list(inputs), output, overwrite, cog=cog))
    click.echo(format_summary(result.summary))
    seen = ", ".join(f"{k} dates: {v:,} px" for k, v in result.summary["observations"].items())
    click.echo(f"observations: {seen}\ncomposite: {result.output}\nsummary: {result.summary_path}")
