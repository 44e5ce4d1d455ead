"""The `lut` command line: each command parses options and calls one library function."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import warnings
from pathlib import Path

import click
from click.core import ParameterSource

from .dino_recipes import describe as describe_recipe
from .errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_TERMINATED, Interrupted, LutError


class LutGroup(click.Group):
    """One form for every failure: a single `error: ...` line and a documented exit code (see `lut --help`).

    Library errors, click's usage errors, Ctrl-C and SIGTERM all end here; LUT_DEBUG=1 shows tracebacks
    of unexpected errors instead."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        with warnings.catch_warnings(), _sigterm_raises():
            _one_line_warnings()
            try:
                code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            except click.exceptions.NoArgsIsHelpError as exc:  # bare `lut`: the help, as usual
                click.echo(exc.ctx.get_help() if exc.ctx else str(exc))
                code = 0
            except click.ClickException as exc:
                hint = f" (see '{exc.ctx.command_path} --help')" if getattr(exc, "ctx", None) else ""
                self._fail(f"{exc.format_message()}{hint}", exc.exit_code)
            except click.exceptions.Abort:
                self._fail("interrupted; nothing was written", EXIT_INTERRUPTED)
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except LutError as exc:
            self._fail(str(exc), exc.exit_code)
        except KeyboardInterrupt as exc:
            self._fail(str(exc) or "interrupted; nothing was written", getattr(exc, "exit_code", EXIT_INTERRUPTED))
        except MemoryError:
            self._fail("out of memory: try a smaller --batch-size", EXIT_BAD_INPUT)
        except OSError as exc:
            self._fail(f"{exc.strerror or exc}{': ' + str(exc.filename) if exc.filename else ''}", EXIT_BAD_INPUT)
        except Exception as exc:  # noqa: BLE001 - the CLI promises one line, never a traceback
            if os.environ.get("LUT_DEBUG"):
                raise
            first = str(exc).splitlines()[0] if str(exc) else "no details"
            self._fail(f"lut failed unexpectedly: {first} (LUT_DEBUG=1 shows the traceback)", EXIT_BAD_INPUT)

    @staticmethod
    def _fail(message: str, code: int) -> None:
        click.echo(f"error: {' '.join(message.split())}", err=True)
        sys.exit(code)


@contextlib.contextmanager
def _sigterm_raises():
    """SIGTERM (timeout, systemd, docker stop) ends a command like Ctrl-C: temporaries removed, exit 143."""
    def handler(signum, frame):
        raise Interrupted("terminated; nothing was written", EXIT_TERMINATED)

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _one_line_warnings() -> None:
    """Library warnings become lut's one-line `warning:`; deprecation notes meant for developers are hidden."""
    for category in (DeprecationWarning, FutureWarning, PendingDeprecationWarning):
        warnings.filterwarnings("ignore", category=category)
    warnings.filterwarnings("ignore", message=".*NotGeoreferencedWarning.*")

    def show(message, category, filename, lineno, file=None, line=None):
        text = str(message).splitlines()[0] if str(message) else category.__name__
        click.echo(f"warning: {text}", err=True)

    warnings.showwarning = show


def show_progress(quiet: bool) -> bool:
    """Progress bars only on a terminal: never written into a redirected log."""
    return not quiet and sys.stderr.isatty()


@click.group(cls=LutGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lut")
def lut() -> None:
    """lut, the land-use toolkit: fine-tune, pretrain, export and map scenes.

    \b
    Exit codes: 0 success, 1 bad input or failed run, 2 usage error,
    3 Hugging Face hub unreachable, 4 some scenes of a many-scene run failed,
    130 interrupted (Ctrl-C), 143 terminated (SIGTERM)."""


def data_options(f):
    """Options shared by finetune and compare."""
    options = [
        click.option("--data", default="synthetic", show_default=True,
                     help="'synthetic' (the embedded generator) or an image folder DIR/<class>/*."),
        click.option("--synthetic-images", default=8000, show_default=True, type=click.IntRange(12),
                     help="Number of synthetic images."),
        click.option("--bands", default=None, help="1-based bands of GeoTIFF chips, e.g. 3,2,1 (default 1,2,3)."),
        click.option("--image-size", default=None, type=click.IntRange(1),
                     help="Input size in pixels (default: the backbone's)."),
        click.option("--epochs", default=15, show_default=True, type=click.IntRange(1)),
        click.option("--batch-size", default=32, show_default=True, type=click.IntRange(1),
                     help="The global batch, split over --devices x --nodes ranks."),
        click.option("--seed", default=0, show_default=True, type=int),
        click.option("--workers", default=0, show_default=True, type=click.IntRange(0), help="DataLoader workers."),
        click.option("--no-cache", is_flag=True, help="Recompute frozen features every epoch (for benchmarks)."),
        click.option("--quiet", is_flag=True, help="No progress bars."),
        click.option("--class-weights", default="none", show_default=True, type=click.Choice(["none", "balanced"]),
                     help="balanced: every class weighs the same in the loss (n / (K * n_k)), for imbalanced labels."),
        click.option("--label-smoothing", default=0.0, show_default=True, type=click.FloatRange(0, 1, max_open=True)),
        click.option("--mixup", default=0.0, show_default=True, type=click.FloatRange(0),
                     help="mixup alpha (0 = off); pixel batches only, cached strategies are not mixed."),
        click.option("--cutmix", default=0.0, show_default=True, type=click.FloatRange(0),
                     help="cutmix alpha (0 = off); with --mixup each mixed batch takes one of the two."),
        click.option("--mix-prob", default=1.0, show_default=True, type=click.FloatRange(0, 1),
                     help="Probability that a batch is mixed."),
        click.option("--ema", default=None, type=click.FloatRange(0, 1, min_open=True, max_open=True),
                     help="Decay of an EMA of the weights (e.g. 0.999), used for validation, the bundle and export."),
        click.option("--patience", default=None, type=click.IntRange(1),
                     help="Stop after this many epochs without a better validation accuracy."),
        click.option("--crop-scale", default=1.0, show_default=True, type=click.FloatRange(0.05, 1),
                     help="Random resized crops keeping at least this area fraction (1 = off); flips and "
                          "90-degree rotations are always on."),
        click.option("--colour-jitter", "colour_jitter", default=0.0, show_default=True,
                     type=click.FloatRange(0, 1, max_open=True),
                     help="Brightness/contrast/saturation jitter strength (0 = off: colour carries land cover)."),
        click.option("--cache-views", default=1, show_default=True, type=click.IntRange(1),
                     help="linear_probe/last_block: augmented views cached per image, one per epoch in turn."),
        click.option("--drop-path", default=0.0, show_default=True, type=click.FloatRange(0, 1, max_open=True),
                     help="Stochastic depth of the last block (linear in depth, DeiT's rule); 0 = off."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def train_config(epochs: int, batch_size: int, seed: int, workers: int, no_cache: bool, quiet: bool,
                 class_weights: str, label_smoothing: float, mixup: float, cutmix: float, mix_prob: float,
                 ema: float | None, patience: int | None, crop_scale: float, colour_jitter: float, cache_views: int,
                 drop_path: float):
    from .augment import AugmentConfig
    from .regularize import MixConfig
    from .training import TrainConfig

    return TrainConfig(epochs=epochs, batch_size=batch_size, seed=seed, num_workers=workers,
                       cache_features=not no_cache, progress=show_progress(quiet), class_weights=class_weights,
                       label_smoothing=label_smoothing, mix=MixConfig(mixup, cutmix, mix_prob), ema=ema,
                       patience=patience, augment=AugmentConfig(crop_scale, colour_jitter), cache_views=cache_views,
                       drop_path=drop_path)


def dist_options(precision_default: str):
    """Where training runs (finetune, compare, pretrain): devices, nodes, accelerator, precision."""
    def decorate(f):
        options = [
            click.option("--devices", default=1, show_default=True, type=click.IntRange(1),
                         help="Devices (GPUs, or CPU processes) per node; one node starts its own ranks."),
            click.option("--nodes", default=1, show_default=True, type=click.IntRange(1),
                         help="Nodes; multi-node runs are started by torchrun or srun around lut (README)."),
            click.option("--accelerator", default="auto", show_default=True,
                         type=click.Choice(["auto", "cpu", "gpu"])),
            click.option("--device", default=None, hidden=True, type=click.Choice(["auto", "cpu", "cuda"]),
                         help="Old name of --accelerator (cuda means gpu)."),
            click.option("--precision", default=precision_default, show_default=True,
                         type=click.Choice(["auto", "fp32", "bf16-mixed", "bf16"]),
                         help="bf16-mixed: bfloat16 autocast where the CPU/GPU has native bf16; auto picks it "
                              "there (bf16 is an alias)."),
        ]
        for option in reversed(options):
            f = option(f)
        return f
    return decorate


def dist_config(devices: int, nodes: int, accelerator: str, device: str | None, precision: str):
    from .distributed import DistConfig, from_device

    if device is not None:
        accelerator = from_device(device)
    return DistConfig(devices=devices, nodes=nodes, accelerator=accelerator,
                      precision="bf16-mixed" if precision == "bf16" else precision)


@lut.command()
@click.option("--strategy", default="progressive", show_default=True,
              type=click.Choice(["linear_probe", "last_block", "full_ft", "differential_lr", "progressive", "llrd"]))
@click.option("--backbone", default="google/vit-base-patch16-224", show_default=True,
              help="Hub id, local checkpoint dir (e.g. from lut pretrain), or vit-tiny|vit-small|vit-base.")
@data_options
@click.option("--train-labels", default=None, type=click.IntRange(1), help="Use a stratified subset of N training labels.")
@click.option("--head-lr", default=None, type=float, help="Head learning rate (default: the strategy's).")
@click.option("--backbone-lr", default=None, type=float, help="Backbone learning rate (default: the strategy's).")
@click.option("--unfreeze-every", default=3, show_default=True, type=click.IntRange(1),
              help="progressive: epochs between unfreezing blocks.")
@click.option("--layer-decay", default=0.75, show_default=True, type=float, help="llrd: per-layer LR decay.")
@click.option("--gsd", default=None, type=float,
              help="Ground resolution of photo chips in metres per pixel (GeoTIFF chips carry theirs); recorded so "
                   "classify reads windows of the same ground footprint.")
@click.option("--reflectance-offset", default=None, type=float,
              help="Added to 16-bit reflectance before /10000, e.g. -1000 for Sentinel-2 L2A baseline >= 04.00 "
                   "(default: BOA_ADD_OFFSET from the chips' metadata, else 0).")
@click.option("-o", "--output", default=None, type=click.Path(path_type=Path), help="Bundle dir (default models/<strategy>).")
@click.option("--overwrite", is_flag=True, help="Replace an existing lut bundle (never anything else).")
@dist_options("fp32")
def finetune(strategy, backbone, data, synthetic_images, bands, image_size, epochs, batch_size, seed, workers,
             no_cache, quiet, class_weights, label_smoothing, mixup, cutmix, mix_prob, ema, patience, crop_scale,
             colour_jitter, cache_views, drop_path, train_labels, head_lr, backbone_lr, unfreeze_every, layer_decay,
             gsd, reflectance_offset, output, overwrite, devices, nodes, accelerator, device, precision):
    """Fine-tune a ViT with one transfer strategy and write a model bundle."""
    from .finetune import FinetuneConfig, finetune as run, format_metrics
    from .radiometry import parse_bands
    from .strategies import StrategyConfig

    cfg = FinetuneConfig(
        data=data, synthetic_images=synthetic_images, bands=parse_bands(bands), image_size=image_size,
        backbone=backbone,
        strategy=StrategyConfig(strategy, head_lr, backbone_lr, unfreeze_every, layer_decay),
        train=train_config(epochs, batch_size, seed, workers, no_cache, quiet, class_weights, label_smoothing, mixup,
                           cutmix, mix_prob, ema, patience, crop_scale, colour_jitter, cache_views, drop_path),
        dist=dist_config(devices, nodes, accelerator, device, precision), train_labels=train_labels, gsd=gsd,
        reflectance_offset=reflectance_offset, output=output, overwrite=overwrite,
    )
    target, outcome = run(cfg)
    if outcome is not None:  # None on the other ranks of a torchrun/srun run
        click.echo(format_metrics(outcome.metrics))
        click.echo(f"bundle: {target}")


@lut.command("export")
@click.argument("model_dir", required=False, type=click.Path(path_type=Path))
@click.option("--quantize", is_flag=True, help="Also write an INT8 model for CPU/edge (optimum ORTQuantizer).")
@click.option("--fp16", is_flag=True, help="Also write an FP16 model for GPU inference.")
@click.option("--calibration-data", type=click.Path(path_type=Path), default=None,
              help="Image folder: static INT8 calibrated on these images instead of dynamic.")
@click.option("--data", default=None, help="Parity sample source (default: the bundle's recorded data).")
@click.option("--samples", default=64, show_default=True, type=click.IntRange(1), help="Parity sample size.")
@click.option("--batch-size", default=16, show_default=True, type=click.IntRange(1), help="Throughput batch size.")
@click.option("--overwrite", is_flag=True, help="Replace an existing onnx/ export.")
def export_cmd(model_dir, quantize, fp16, calibration_data, data, samples, batch_size, overwrite):
    """Export MODEL_DIR (default: models/LATEST) to ONNX and measure parity with PyTorch."""
    from lut.export.exporter import ExportConfig, export_model

    result = export_model(ExportConfig(model_dir=model_dir, quantize=quantize, fp16=fp16,
                                       calibration_data=calibration_data, data=data, samples=samples,
                                       batch_size=batch_size, overwrite=overwrite))
    click.echo(result.table())
    if "int8_meets_agreement_goal" in result.report and not result.report["int8_meets_agreement_goal"]:
        click.echo("warning: INT8 top-1 agreement is below 99%; prefer the fp32 model for this bundle", err=True)
    click.echo(f"onnx: {result.onnx_dir}")


@lut.command()
@click.argument("scenes", nargs=-1, required=True)
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="Land-use GeoTIFF for one scene; a directory for several (maps go to "
                   "DIR/<relative path>.landuse.tif).")
@click.option("--model", default=None, type=click.Path(path_type=Path),
              help="Bundle or onnx/ folder (default: the bundle models/LATEST names).")
@click.option("--precision", default="auto", show_default=True, type=click.Choice(["auto", "fp32", "int8", "fp16"]),
              help="auto: FP16 on a GPU, INT8 on a CPU when exported, else fp32.")
@click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"]))
@click.option("--stride", default=None, type=click.IntRange(1),
              help="Window step in scene pixels (default: the window size, i.e. no overlap).")
@click.option("--bands", default=None, help="1-based bands, e.g. 3,2,1 (default: the bundle's, else 1,2,3).")
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
@click.option("--confidence", is_flag=True, help="Add a band with the winning probability (0-100).")
@click.option("--cog", is_flag=True, help="Write a Cloud Optimized GeoTIFF.")
@click.option("--preview", default=None, type=click.Path(path_type=Path), help="Also write a PNG quick-look.")
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
@click.option("--shard", default=None,
              help="I/N: classify only shard I (0-based) of N of the sorted scene list, for SLURM/Batch/k8s arrays.")
@click.option("--retries", default=2, show_default=True, type=click.IntRange(0),
              help="--engine ray: retries of a scene whose worker process or node died.")
@click.option("--max-failures", default=None, type=click.IntRange(1), help="Stop after this many failed scenes.")
@click.option("--progress", "progress_mode", default="lines", show_default=True,
              type=click.Choice(["lines", "json", "none"]), help="Several scenes: a line, or a JSON row, per scene.")
@click.option("--overwrite", is_flag=True,
              help="Replace a map (with its sidecars) that lut wrote; for -o DIR, redo a run made with another "
                   "configuration.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def classify(scenes, output, model, precision, device, stride, bands, scale, reflectance_offset, nodata, min_valid, gsd,
             no_resample, batch_size, confidence, cog, preview, vector, vector_min_area, engine, workers,
             cpus_per_worker, gpus_per_worker, address, shard, retries, max_failures, progress_mode, overwrite, quiet):
    """Classify GeoTIFF SCENES into georeferenced land-use maps.

    \b
    One scene and -o FILE.tif: that map. Several scenes, globs, directories or @list.txt and -o DIR:
    a resumable run with DIR/run.json, DIR/run.jsonl, a mosaic and summary.json; exit code 4 when
    some scenes failed."""
    from lut.tiling.classify import ClassifyConfig, classify_scene, format_summary
    from .radiometry import parse_bands

    template = ClassifyConfig(
        scene=Path(scenes[0]), output=output, model=model, precision=precision, device=device, stride=stride,
        bands=parse_bands(bands), scale=scale, reflectance_offset=reflectance_offset, nodata=nodata,
        min_valid=min_valid, gsd=gsd, resample=not no_resample, batch_size=batch_size, confidence=confidence,
        cog=cog, preview=preview, vector=vector, vector_min_area=vector_min_area, overwrite=overwrite,
        progress=show_progress(quiet))
    many_options = engine != "local" or shard is not None or max_failures is not None
    if _many_scenes(scenes, output, many_options):
        return _classify_many(scenes, template, engine, workers, cpus_per_worker, gpus_per_worker, address, shard,
                              retries, max_failures, progress_mode)
    result = classify_scene(template)
    click.echo(format_summary(result.summary))
    click.echo(f"{result.patches} patches ({result.skipped} all-nodata and {result.low_valid} below --min-valid "
               f"skipped) in {result.seconds:.1f} s, {result.patches_per_second:.1f} patches/s, {result.precision} on "
               f"{result.device} ({result.why})")
    click.echo(f"map: {result.output}\nsummary: {result.summary_path}" + (f"\npreview: {preview}" if preview else "")
               + (f"\nvector: {vector} ({result.summary['vector']['polygons']:,} polygons)" if vector else ""))
    return 0


def _many_scenes(scenes: tuple[str, ...], output: Path, many_options: bool) -> bool:
    """Several scenes (or a directory, glob or @list) or -o DIR make a many-scene run; one scene and
    -o FILE.tif is a single map."""
    one = len(scenes) == 1 and not scenes[0].startswith("@") and not any(ch in scenes[0] for ch in "*?[") \
        and not Path(scenes[0]).is_dir()
    to_file = output.suffix.lower() in (".tif", ".tiff") and not output.is_dir()
    if one and to_file and many_options:
        raise click.UsageError("--engine, --shard and --max-failures apply to runs with -o DIR")
    if not one and to_file:
        raise click.UsageError(f"several scenes need -o DIR (a directory), not the file name {output}")
    return not (one and to_file)


def _classify_many(scenes, template, engine, workers, cpus_per_worker, gpus_per_worker, address, shard, retries,
                   max_failures, progress_mode) -> int:
    from lut.tiling.engines import RayOptions
    from lut.tiling.many import ManyConfig, classify_many
    from lut.tiling.scene_list import parse_shard

    if template.preview is not None or template.vector is not None:
        raise click.UsageError("--preview and --vector apply to one scene; a run with -o DIR writes DIR/mosaic.png")
    result = classify_many(ManyConfig(
        scenes=list(scenes), output=template.output, template=template, engine=engine,
        ray=RayOptions(workers, cpus_per_worker, gpus_per_worker, address, retries), shard=parse_shard(shard),
        max_failures=max_failures, progress=progress_mode, overwrite=template.overwrite), say=click.echo)
    mosaics = ", ".join(str(result.output / m["vrt"]) for m in result.summary["mosaics"]) or "none"
    click.echo(f"{result.ok} ok, {result.failed} failed, {result.skipped} skipped; mosaic: {mosaics}; "
               f"summary: {result.output / 'summary.json'}", err=progress_mode == "json")
    return result.exit_code


def _warn(message: str) -> None:
    click.echo(f"warning: {message}", err=True)


@lut.command()
@click.argument("before", type=click.Path(path_type=Path))
@click.argument("after", type=click.Path(path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="Change GeoTIFF; NAME.json, NAME.matrix.csv, NAME.classes.csv and NAME.md go beside it.")
@click.option("--min-confidence", default=None, type=click.FloatRange(0, 100),
              help="Count a change as unchanged where either map's confidence band is below this percent.")
@click.option("--preview", default=None, type=click.Path(path_type=Path),
              help="Also write a PNG: before, after and change side by side, with gains and losses.")
@click.option("--model", default=None, type=click.Path(path_type=Path),
              help="BEFORE and AFTER are scenes: classify both with this bundle first (maps kept beside the output).")
@click.option("--precision", default="auto", show_default=True, type=click.Choice(["auto", "fp32", "int8", "fp16"]),
              help="With --model: as for classify.")
@click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"]),
              help="With --model: as for classify.")
@click.option("--bands", default=None, help="With --model: the scenes' bands, as for classify.")
@click.option("--overwrite", is_flag=True, help="Replace a change raster (and its sidecars) that lut wrote.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def change(before, after, output, min_confidence, preview, model, precision, device, bands, overwrite, quiet):
    """Compare two land-use maps (or, with --model, two scenes): change raster and from-to matrix."""
    from .change import ChangeConfig, compute_change
    from .radiometry import parse_bands

    cfg = ChangeConfig(before, after, output, min_confidence, preview, overwrite)
    if model is None:
        if bands is not None or precision != "auto" or device != "auto":
            raise click.UsageError("--bands, --precision and --device apply only with --model (to classify scenes)")
        result = compute_change(cfg, warn=_warn)
    else:
        from lut.tiling.change_scenes import change_scenes
        from lut.tiling.classify import ClassifyConfig

        template = ClassifyConfig(scene=before, output=output, model=model, precision=precision, device=device,
                                  bands=parse_bands(bands), progress=show_progress(quiet))
        result = change_scenes(cfg, template, say=_warn).change
    click.echo(result.transitions.markdown(f"{result.outputs.raster.name}"), nl=False)
    click.echo("\n".join(f"{k}: {v}" for k, v in result.outputs.named().items()))


@lut.command()
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
    from .vectorize import VectorizeConfig, vectorize as run

    result = run(VectorizeConfig(map_path, output, min_area, min_pixels, simplify, int(connectivity), layer,
                                 overwrite))
    for name, row in result.classes.items():
        click.echo(f"{name:<12} {row['polygons']:>8,} polygons  {row['km2']:>12.4f} km2")
    sieved = (f", {result.sieved_pixels:,} pixels sieved (regions < {result.sieve_pixels} px)"
              if result.sieve_pixels else "")
    click.echo(f"{result.polygons:,} polygons in {result.seconds:.1f} s{sieved}")
    click.echo(f"vector: {result.output} (layer {result.layer})")


@lut.command()
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
                                 overwrite=overwrite, progress=show_progress(quiet)), say=click.echo)
    click.echo(f"map accuracy against the scene's ground truth: {result.map_accuracy:.3f} "
               f"(patch test accuracy {result.test_accuracy:.3f})")
    total = result.change_scores[-1]
    click.echo(f"change mapped: {total['mapped_km2']:.3f} km2 against {total['true_km2']:.3f} km2 true "
               f"({total['error_percent']:+.1f}%)")
    for name, path in (("bundle", result.bundle), ("onnx", result.onnx_dir), ("scene", result.scene),
                       ("truth", result.truth), ("map", result.landuse), ("summary", result.summary),
                       ("preview", result.preview), ("change", result.change),
                       ("change preview", result.change_preview)):
        click.echo(f"  {name:<15} {path}")


@lut.command()
@click.option("--method", default="dino", show_default=True, type=click.Choice(["dino"]))
@click.option("--recipe", default="paper", show_default=True, type=click.Choice(["paper", "short"]),
              help="A preset; options given explicitly override it. paper: the defaults shown. short (about 15 min "
                   "on 2 CPU cores, augmentation chosen on RSSCN7 validation, see README): "
                   + describe_recipe("short") + ".")
@click.option("--data", "sources", multiple=True, required=True,
              help="Repeatable: an image folder (labels ignored) or a GeoTIFF scene; PATH:3,2,1 picks its bands.")
@click.option("--backbone", default="vit-small", show_default=True,
              help="vit-tiny|vit-small|vit-base (random init) or a local ViT checkpoint to keep pretraining.")
@click.option("-o", "--output", default=None, type=click.Path(path_type=Path),
              help="Checkpoint dir (default models/dino-<backbone>).")
@click.option("--image-size", default=224, show_default=True, type=click.IntRange(1), help="Global crop size.")
@click.option("--local-size", default=None, type=int, help="Local crop size (default 96/224 of the global).")
@click.option("--local-views", default=6, show_default=True, type=click.IntRange(0))
@click.option("--epochs", default=100, show_default=True, type=click.IntRange(1))
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(2),
              help="The global batch (over every device); the LR scales per 256 images of it.")
@click.option("--lr", default=5e-4, show_default=True, type=float, help="Peak LR per 256 images.")
@click.option("--warmup-epochs", default=10, show_default=True, type=click.IntRange(0))
@click.option("--momentum", default=0.996, show_default=True, type=click.FloatRange(0, 1),
              help="Teacher EMA momentum at the start (cosine schedule to 1).")
@click.option("--teacher-temp-start", default=0.04, show_default=True,
              type=click.FloatRange(0, min_open=True),
              help="Teacher temperature at the start of the warm-up (the paper's --warmup_teacher_temp).")
@click.option("--teacher-temp-final", default=0.07, show_default=True, type=click.FloatRange(0, min_open=True),
              help="Teacher temperature after the warm-up (the paper's --teacher_temp).")
@click.option("--weight-decay", default=0.04, show_default=True, type=click.FloatRange(0),
              help="AdamW weight decay at the start, on weights only (not norms, biases, position embeddings, CLS).")
@click.option("--weight-decay-end", default=0.4, show_default=True, type=click.FloatRange(0),
              help="Weight decay at the end of the cosine schedule.")
@click.option("--colour-jitter", default=0.5, show_default=True, type=click.FloatRange(0),
              help="Colour-jitter strength (0 disables); colour carries much of the land-cover signal.")
@click.option("--grayscale", default=0.2, show_default=True, type=click.FloatRange(0, 1),
              help="Probability of a grayscale view.")
@click.option("--solarize", default=0.2, show_default=True, type=click.FloatRange(0, 1),
              help="Probability of solarizing the second global view.")
@click.option("--out-dim", default=4096, show_default=True, type=click.IntRange(2), help="DINO head output size.")
@click.option("--head-hidden", default=1024, show_default=True, type=click.IntRange(2))
@click.option("--bottleneck", default=256, show_default=True, type=click.IntRange(2))
@click.option("--windows-per-scene", default=200, show_default=True, type=click.IntRange(1))
@click.option("--bands", default=None, help="Bands for every raster source, e.g. 3,2,1.")
@click.option("--seed", default=0, show_default=True, type=int,
              help="Also the split seed: a labelled folder contributes only finetune's training split for it.")
@click.option("--all-images", is_flag=True, help="Use every image of labelled folders (disables the split guard).")
@click.option("--monitor", default=None, type=click.Path(path_type=Path),
              help="Labelled folder: k-NN accuracy after each epoch, to see collapse early.")
@click.option("--resume", is_flag=True, help="Continue from the last epoch checkpoint.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output (and any unfinished run).")
@click.option("--workers", default=0, show_default=True, type=click.IntRange(0))
@click.option("--quiet", is_flag=True, help="No progress bars (one JSON line per epoch instead).")
@dist_options("auto")
def pretrain(method, recipe, sources, backbone, output, image_size, local_size, local_views, epochs, batch_size, lr,
             warmup_epochs, momentum, teacher_temp_start, teacher_temp_final, weight_decay, weight_decay_end,
             colour_jitter, grayscale, solarize, out_dim,
             head_hidden, bottleneck, windows_per_scene, bands, seed, all_images, monitor,
             resume, overwrite, workers, quiet, devices, nodes, accelerator, device, precision):
    """Self-supervised DINO pretraining on unlabelled imagery; the result is a backbone for finetune."""
    from .dino import pretrain as run
    from .dino_recipes import RECIPES, recipe_config
    from .radiometry import parse_bands

    options = dict(
        sources=list(sources), method=method, backbone=backbone, output=output, image_size=image_size,
        local_size=local_size, local_views=local_views, epochs=epochs, batch_size=batch_size, lr=lr,
        warmup_epochs=warmup_epochs, momentum=momentum, teacher_temp_start=teacher_temp_start,
        weight_decay=weight_decay, weight_decay_end=weight_decay_end,
        teacher_temp_final=teacher_temp_final, colour_jitter=colour_jitter, grayscale=grayscale, solarize=solarize,
        out_dim=out_dim, head_hidden=head_hidden, bottleneck=bottleneck,
        windows_per_scene=windows_per_scene, bands=parse_bands(bands), seed=seed, split_guard=not all_images,
        monitor=monitor, resume=resume, overwrite=overwrite,
        dist=dist_config(devices, nodes, accelerator, device, precision), workers=workers,
        progress=show_progress(quiet))
    ctx = click.get_current_context()
    for name in RECIPES[recipe]:  # the recipe's values stand where the user left the default
        if ctx.get_parameter_source(name) is ParameterSource.DEFAULT:
            del options[name]
    result = run(recipe_config(recipe, **options))
    if result is None:  # the other ranks of a torchrun/srun run
        return
    last = result.history[-1] if result.history else {}
    knn = f", k-NN accuracy {last['knn_accuracy']:.3f}" if "knn_accuracy" in last else ""
    click.echo(f"pretrained {len(result.history)} epochs in {result.seconds:.0f} s, final loss "
               f"{last.get('loss', float('nan')):.4f}{knn}")
    click.echo(f"backbone: {result.output}  (use: lut finetune --backbone {result.output})")


@lut.command()
@click.option("--backbones", required=True, help="Comma-separated backbones (specs or checkpoint dirs).")
@click.option("--strategies", default="all", show_default=True, help="Comma-separated strategies, or all.")
@click.option("--train-labels", default="all", show_default=True, help="Label counts, e.g. 500,1000,2000,all.")
@click.option("--efficiency-strategies", default="linear_probe,differential_lr,progressive", show_default=True,
              help="Strategies also run at the smaller label counts.")
@data_options
@click.option("--grid", multiple=True,
              help="Repeatable recipe search, e.g. --grid mixup=0,0.2 --grid label_smoothing=0,0.1: every combination "
                   "runs for every cell; tables 1-4 show each cell's winner on validation accuracy.")
@click.option("-o", "--output", default="results", show_default=True, type=click.Path(path_type=Path))
@dist_options("fp32")
def compare(backbones, strategies, train_labels, efficiency_strategies, grid, data, synthetic_images, bands,
            image_size, epochs, batch_size, seed, workers, no_cache, quiet, class_weights, label_smoothing, mixup,
            cutmix, mix_prob, ema, patience, crop_scale, colour_jitter, cache_views, drop_path, output, devices,
            nodes, accelerator, device, precision):
    """Run a grid of finetune runs and write the study's tables (resumable: finished cells are cached)."""
    from .compare import CompareConfig, parse_labels, parse_strategies, run_compare
    from .recipe_grid import parse_grid
    from .radiometry import parse_bands

    cfg = CompareConfig(
        backbones=[b.strip() for b in backbones.split(",") if b.strip()], strategies=parse_strategies(strategies),
        train_labels=parse_labels(train_labels), efficiency_strategies=parse_strategies(efficiency_strategies),
        data=data, synthetic_images=synthetic_images, bands=parse_bands(bands), image_size=image_size,
        train=train_config(epochs, batch_size, seed, workers, no_cache, quiet, class_weights, label_smoothing, mixup,
                           cutmix, mix_prob, ema, patience, crop_scale, colour_jitter, cache_views, drop_path),
        dist=dist_config(devices, nodes, accelerator, device, precision), grid=parse_grid(grid), output=output)
    result = run_compare(cfg, say=click.echo)
    if result is not None:  # None on the other ranks of a torchrun/srun run
        click.echo(f"results: {result['output'] / 'results.md'}")


def main() -> None:
    lut(prog_name="lut")


if __name__ == "__main__":
    main()
