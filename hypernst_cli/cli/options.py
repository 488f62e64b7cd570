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
SEED = typer.Option(None, "--seed", help="Seed of the style-code patch sampling (config default).")
ITERATIONS = typer.Option(
    None, "--iterations", min=1,
    help="Hyper-network refinement iterations (default: the model's, hypernet.iterations in its "
         "config.json: 3 in the shipped configs).")
FOLLOW = typer.Option(
    True, "--follow/--no-follow",
    help="Models with spatial features: move the photo's detail with the edited face's landmarks "
         "(--no-follow keeps it in place, which holds pose and mouth still).")
#: the edit strengths `edit` renders and `directions check` measures by default: the range the
#: shipped directions are checked on (docs/compact-model.md); further out the pose edits double edges
EDIT_STRENGTH = typer.Option("-2..2", "--strength", help="Range A..B of edit strengths.")
SIZE = typer.Option(None, "--size", min=16, help="Output size of aligned results (default: the model's).")
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


DETAIL = typer.Option(
    None, "--detail", min=0.0, callback=finite,
    help="Restore the content's fine detail on the output: 0 = the generator's output as is, "
         "1 = all of it (default: the model's setting; 0 for the embedded compact model).")
PALETTE = typer.Option(
    None, "--palette", min=0.0, max=1.0,
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


def parse_region_spec(spec: str) -> dict[str, str]:
    """Parse ``--region hair=a.png,face=b.png,background=c.png`` into a dict (paths not checked
    here); a malformed part or an unknown region is a one-line usage error naming the regions."""
    from hypernst_cli.errors import UsageError
    from hypernst_cli.faces.regions import REGION_IDS, REGION_NAMES

    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
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


def is_image_file(path: Path) -> bool:
    from hypernst_cli.io.images import IMAGE_SUFFIXES

    return path.suffix.lower() in IMAGE_SUFFIXES and path.suffix.lower() != ".gif"
