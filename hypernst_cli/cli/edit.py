"""``hypernst edit``: InterFaceGAN directions in W+, on the reconstruction or the stylized result."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from hypernst_cli.cli import options as opt
from hypernst_cli.cli.app import app
from hypernst_cli.cli.state import STATE


@app.command()
def edit(
    content: Path = typer.Argument(..., help="Content photo."),
    direction: str = typer.Option(..., "--direction", "-d", help="age | smile | pose | FILE.safetensors"),
    strength: str = opt.EDIT_STRENGTH,
    steps: int = typer.Option(5, "--steps", min=1, max=opt.MAX_FRAMES,
                              help="Number of frames across the range."),
    output: Path = opt.output_option("Output folder: frames and a strip image."),
    style: Optional[Path] = typer.Option(None, "--style", help="Also stylize with this style image."),
    style_strength: float = typer.Option(1.0, "--style-strength", callback=opt.unit_fraction,
                                         metavar="[0<=x<=1]",
                                         help="Style strength when --style is given."),
    latent: Optional[Path] = typer.Option(
        None, "--latent", help="Reuse a latent (W+, and F if saved) from `hypernst invert`."),
    follow: bool = opt.FOLLOW,
    palette: Optional[float] = opt.PALETTE,
    size: Optional[int] = opt.SIZE,
    iterations: Optional[int] = opt.ITERATIONS,
    precision: Optional[str] = opt.PRECISION,
    compile_models: Optional[bool] = opt.COMPILE,
    seed: Optional[int] = opt.SEED,
    weights: Optional[str] = opt.WEIGHTS,
    config: str = opt.CONFIG,
    backend: str = opt.BACKEND,
) -> None:
    """Edit age, smile or pose (InterFaceGAN directions in W+), optionally on a stylized face.

    The hyper-network's offsets are predicted once for the unedited face and applied to every
    edited latent (as in HyperStyle), so strength 0 is exactly the unedited result. With a model's
    spatial features F, F moves by the generator's own feature difference.
    """
    from hypernst_cli.cli.stylize import _read_latent
    from hypernst_cli.errors import UsageError
    from hypernst_cli.io import save_image
    from hypernst_cli.io.contact_sheet import contact_sheet
    from hypernst_cli.pipeline.directions import refuse_latent_file, resolve_direction
    from hypernst_cli.io.tensors import to_uint8
    from hypernst_cli.pipeline.stylize import linspace, parse_strength_range, resize_uint8

    if output.suffix:
        raise UsageError(f"-o {output}: edit writes frames and a strip; give a folder")
    lo, hi = parse_strength_range(strength)
    alphas = linspace(lo, hi, steps)
    if style is not None:  # before the models load
        opt.require_file(style, f"--style {style}", hint="give a style image file")
    opt.check_output_folder(output)
    given_latent = _read_latent(latent, content) if latent else None  # before the models load
    refuse_latent_file(direction)  # before the models load too
    if style is None and (palette is not None or style_strength != 1.0):
        # a palette is the style's: with no style there is nothing to take it from
        STATE.warn(f"{'--palette' if palette is not None else '--style-strength'} applies only "
                   "with --style; ignored")
    pipe = opt.load_pipeline(weights=weights, config=config, backend=backend, seed=seed,
                             iterations=iterations,
                             precision=precision, compile=compile_models, palette=palette,
                             styled=style is not None)
    name, vector = resolve_direction(direction, pipe.models)
    stem = f"{content.stem}_{name}"
    frames_out = {f"{stem}_{i:02d}.png" for i in range(steps)} | {f"{stem}_strip.png"}
    opt.check_frames_spare_inputs(output, frames_out, [content, *([style] if style else [])],
                                  "an edit frame")
    face = pipe.prepare(content, latent=given_latent)[0]
    codes = pipe.code_table(face, style, strength=style_strength)
    base = pipe.generate([face], codes,
                         palettes=[pipe.palette_for(style, strength=style_strength)])
    frames = []
    for alpha in alphas:
        img = pipe.render_edit(face, vector, alpha, base, follow=follow)
        frames.append(resize_uint8(to_uint8(img)[0], size))
    for i, (alpha, frame) in enumerate(zip(alphas, frames)):
        save_image(frame, output / f"{stem}_{i:02d}.png")
    opt.remove_stale_frames(output, f"{stem}_", len(frames))  # an earlier run's with more --steps
    strip = contact_sheet([frames], cell=frames[0].shape[0],
                          col_labels=[f"{name} {a:+.2f}" for a in alphas])
    save_image(strip, output / f"{stem}_strip.png")
    STATE.info(f"wrote {len(frames)} frames and {output / (stem + '_strip.png')}")

