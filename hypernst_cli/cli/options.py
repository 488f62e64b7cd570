"""Options shared by the inference commands, and the parsing of their specs (one definition, one
meaning everywhere)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

WEIGHTS = typer.Option(
    None, "--weights", "-w",
    help="Model folder, .safetensors file or registry name (default: downloaded, then embedded).",
)
CONFIG = typer.Option("compact", "--config", help="Model config whose weights to use: tiny | compact | compact256 | paper.")
BACKEND = typer.Option(
    "auto", "--backend",
    help="Face backend: auto (facexlib when its weights are downloaded, else dlib) | dlib | facexlib.")
#: the seeds torch's generators take (from -2^63 to 2^64 - 1); past them seeding failed inside torch
SEED_RANGE = (-(2**63), 2**64 - 1)


def seed_in_range(value: Optional[int]) -> Optional[int]:
    """Refuse a seed torch cannot take (an internal error deep in the style codes otherwise)."""
    if value is not None and not SEED_RANGE[0] <= value <= SEED_RANGE[1]:
        raise typer.BadParameter(f"{value} is out of range for a seed (use a whole number from 0 to "
                                 f"{SEED_RANGE[1]})")
    return value


SEED = typer.Option(None, "--seed", callback=seed_in_range,
                    help="Seed of the style-code patch sampling (config default).")
#: the most --iterations: each pass adds offsets on top of the last, so far past a model's trained
#: count (3 in the shipped configs) the outputs degrade, and a typo of a few zeros ran for hours
MAX_ITERATIONS = 64


def iterations_in_range(value: Optional[int]) -> Optional[int]:
    """Refuse an --iterations past MAX_ITERATIONS (before the models load)."""
    if value is not None and value > MAX_ITERATIONS:
        raise typer.BadParameter(
            f"{value} is far past any model's trained count (3 in the shipped configs): use at "
            f"most {MAX_ITERATIONS}, or leave it out for the model's own")
    return value


ITERATIONS = typer.Option(
    None, "--iterations", min=1, callback=iterations_in_range,
    help="Hyper-network refinement iterations (default: the model's, hypernet.iterations in its "
         f"config.json: 3 in the shipped configs; at most {MAX_ITERATIONS}).")
FOLLOW = typer.Option(
    True, "--follow/--no-follow",
    help="Models with spatial features: move the photo's detail with the edited face's landmarks "
         "(--no-follow keeps it in place, which holds pose and mouth still).")
#: the edit strengths `edit` renders and `directions check` measures by default: the range the
#: shipped directions are checked on (docs/compact-model.md); further out the pose edits double edges
EDIT_STRENGTH = typer.Option("-2..2", "--strength", help="Range A..B of edit strengths.")
#: the largest --size: as align and segment take; a size far past it ran the machine out of memory
MAX_SIZE = 4096
SIZE = typer.Option(None, "--size", min=16, max=MAX_SIZE,
                    help="Output size of aligned results (default: the model's).")
#: the most frames interpolate and edit render: they hold every frame and a contact sheet of
#: them all in memory, which a typo of a few more zeros ran out of
MAX_FRAMES = 256
OVERWRITE = typer.Option(
    False, "--overwrite/--skip-existing",
    help="Redo outputs that already exist (default: skip them, so an interrupted batch resumes).",
)
JSON = typer.Option(False, "--json", help="One JSON line per output, and a summary line.")
NO_CACHE = typer.Option(False, "--no-cache", help="Neither read nor write the style-code cache.")
PRECISION = typer.Option(
    None, "--precision",
    help="fp32 | bf16 | fp16: autocast the generator and hyper-network (default: "
         "$HYPERNST_PRECISION or fp32). bf16 is faster on GPUs and recent CPUs.")
COMPILE = typer.Option(
    None, "--compile/--no-compile",
    help="torch.compile the generator and hyper-network on CUDA (first batch of each size "
         "compiles; default: $HYPERNST_COMPILE).")
def finite(value: Optional[float]) -> Optional[float]:
    """Refuse inf and nan (an option with a minimum but no maximum lets both through)."""
    import math

    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a finite number")
    return value


def unit_fraction(value: Optional[float]) -> Optional[float]:
    """Refuse a value outside [0, 1], nan included (a typer range lets nan through to its bounds
    check, whose message called it too large)."""
    import math

    if value is not None and not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise typer.BadParameter(f"must be a number between 0 and 1, not {value:g}")
    return value


DETAIL = typer.Option(
    None, "--detail", min=0.0, callback=finite,
    help="Restore the content's fine detail on the output: 0 = the generator's output as is, "
         "1 = all of it (default: the model's setting; 0 for the embedded compact model).")
PALETTE = typer.Option(
    None, "--palette", callback=unit_fraction, metavar="[0<=x<=1]",
    help="Match the output's Lab histograms to the style's: 0 = the model's colours "
         "as they are (and no pull to the style's inks), 1 = the style's (x the style strength; "
         "default: the model's setting).")
SHARD = typer.Option(
    None, "--shard", help="K/N: this job's share of the work (also read from SLURM/torchrun).")


def output_option(help_text: str) -> Any:
    return typer.Option(..., "--output", "-o", help=help_text)


def load_pipeline(*, weights: Optional[str], config: str, backend: str, seed: Optional[int],
                  iterations: Optional[int] = None, no_cache: bool = False, precision: Optional[str] = None,
                  compile: Optional[bool] = None, detail: Optional[float] = 0.0,
                  palette: Optional[float] = None, styled: bool = True) -> Any:
    """Load the models once for this process, with a status line.

    ``detail``: see HyperNSTPipeline (None = the model's setting); 0 by default, because only the
    commands whose outputs are stylized photos (stylize, interpolate, evaluate) restore detail.
    ``palette``: see HyperNSTPipeline (None = the model's setting). ``styled``: whether this run's
    outputs take a style (False: invert, directions check, edit without --style), hence the
    palette; the status line names the palette only then."""
    from hypernst_cli.cli.state import STATE
    from hypernst_cli.pipeline.stylize import HyperNSTPipeline

    pipe = HyperNSTPipeline.load(weights=weights, config=config, device=STATE.device,
                                 backend=backend, seed=seed, cache=not no_cache,
                                 iterations=iterations, precision=precision, compile=compile,
                                 detail=detail, palette=palette)
    m = pipe.models
    from hypernst_cli.device import precision_warning

    slow = precision_warning(pipe.precision, pipe.device)
    if slow:  # before the work it slows down: a user should not wait minutes without a word
        where = f"--precision {precision}" if precision else "HYPERNST_PRECISION=fp16"
        STATE.warn(f"{where}: {slow}")
    trained = m.config.hypernet.iterations
    if iterations is not None and iterations > 2 * trained:
        # each pass adds offsets on top of the last: far past the trained count they run away
        STATE.warn(f"--iterations {iterations} is far more than the {trained} passes this model was "
                   "trained with: its outputs may degrade")
    STATE.info(f"model: {m.config.name} ({m.config.resolution} px) from {m.origin} {m.source}; "
               f"device {pipe.device}; faces: {pipe.faces.backend}"
               + (f"; precision {pipe.precision}" if pipe.precision != "fp32" else "")
               + ("; compiled" if pipe.compile and pipe.device.type == "cuda" else "")
               + (f"; detail {pipe.detail:g}" if pipe.detail else "")
               + (f"; palette {pipe.palette:g}" if pipe.palette and styled else "")
               + (f", inks {pipe.palette_inks:g}" if pipe.palette and styled and pipe.palette_inks
                  else ""))
    return pipe


def parse_region_spec(spec: str | list[str]) -> dict[str, str]:
    """Parse ``--region hair=a.png,face=b.png,background=c.png`` into a dict (paths not checked
    here); a malformed part or an unknown region is a one-line usage error naming the regions.
    A list is the specs of a repeated ``--region``, taken together (each region once)."""
    from hypernst_cli.errors import UsageError
    from hypernst_cli.faces.regions import REGION_IDS, REGION_NAMES

    specs = [spec] if isinstance(spec, str) else list(spec)
    out: dict[str, str] = {}
    parts = (p.strip() for one in specs for p in one.split(","))
    for part in filter(None, parts):
        name, sep, value = part.partition("=")
        name = name.strip().lower()
        if not sep or not value.strip():
            raise UsageError(f"invalid region spec '{part}'", hint="use REGION=STYLE_IMAGE, e.g. hair=a.png")
        if name not in REGION_IDS:
            raise UsageError(f"unknown region '{name}'", hint=f"use {', '.join(REGION_NAMES)}")
        if name in out:
            raise UsageError(f"region '{name}' is given twice", hint="give each region once")
        out[name] = value.strip()
    if not out:
        raise UsageError("empty region spec", hint="e.g. hair=a.png,face=b.png")
    return out


def require_file(path: Path, label: str, hint: str) -> None:
    """A one-line usage error, before any model loads, when ``path`` is a folder or missing
    (``label`` starts the message: the option or the file as the user gave it)."""
    from hypernst_cli.errors import UsageError

    if not Path(path).is_file():
        raise UsageError(f"{label}: {'a folder' if Path(path).is_dir() else 'no such file'}",
                         hint=hint)


def check_frames_spare_inputs(output: Path, names: set[str], inputs: list[Path], what: str,
                              stale_prefix: str | None = None) -> None:
    """Refuse, before any frame is rendered, a run whose files ``names`` in ``output`` would
    replace one of its ``inputs`` (a photo named like a frame, in the output folder); with
    ``stale_prefix``, also an input there named like a frame an earlier run left
    (``remove_stale_frames``). ``what``: how the message names the file (``{name}``: its name)."""
    import os

    from hypernst_cli.errors import UsageError

    out_real = os.path.realpath(output)
    for image in inputs:
        real = os.path.realpath(image)
        name = os.path.basename(real)
        stale = stale_prefix is not None and name.startswith(stale_prefix) and name.endswith(".png")
        if os.path.dirname(real) == out_real and (name in names or stale):
            raise UsageError(f"-o {output}: {what.format(name=name)} would replace the input "
                             f"{image}", hint="write the frames to another folder")


def remove_stale_frames(folder: Path, prefix: str, count: int) -> None:
    """Remove ``PREFIX<number>.png`` frames numbered ``count`` or more from ``folder``: an earlier
    run with more frames left them, and they would pass for this run's (never an input file)."""
    from hypernst_cli.io.atomic import is_input

    for stale in folder.glob(f"{prefix}*.png"):
        number = stale.name[len(prefix):-len(".png")]
        if number.isdigit() and int(number) >= count and not is_input(stale):
            stale.unlink()


def check_output_folder(folder: Path) -> None:
    """Refuse, before any model loads, an output folder that a file stands in for (the folder
    itself, or a folder on the way to it): every write would fail, but only after the work."""
    from hypernst_cli.errors import WriteError

    for place in (folder, *folder.parents):
        if place.exists():  # the nearest part of the path that is there decides
            if not place.is_dir():
                raise WriteError(place, "a file is where a folder should be",
                                 hint="move it, or choose another path with -o")
            return


def check_not_an_input_folder(output: Path, specs: list, what: str = "the results",
                              recursive: bool = False) -> None:
    """Refuse ``-o`` an input folder (with ``recursive``, one inside it too): a rerun would take
    the last run's outputs for inputs."""
    from hypernst_cli.errors import UsageError

    out_real = output.resolve()
    for spec in specs:
        folder = Path(spec).expanduser()
        if not folder.is_dir():
            continue
        inside = recursive and folder.resolve() in out_real.parents
        if folder.resolve() == out_real or inside:
            raise UsageError(f"-o {output} is {'inside' if inside else 'also'} an input folder"
                             + (" read with --recursive" if inside else ""),
                             hint=f"write {what} to another folder")


def is_image_file(path: Path) -> bool:
    from hypernst_cli.io.images import IMAGE_SUFFIXES

    return path.suffix.lower() in IMAGE_SUFFIXES and path.suffix.lower() != ".gif"
