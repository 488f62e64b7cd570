"""``hypernst interpolate``: a walk in ALADIN style space, rendered frame by frame."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from hypernst_cli.cli import options as opt
from hypernst_cli.cli.app import app
from hypernst_cli.cli.state import STATE


@app.command()
def interpolate(
    content: Path = typer.Argument(..., help="Content photo."),
    style: Path = typer.Argument(..., help="Target style image (or the start, with --to)."),
    to: Optional[Path] = typer.Option(None, "--to", help="Walk from STYLE to this style instead."),
    steps: int = typer.Option(8, "--steps", min=2, max=opt.MAX_FRAMES,
                              help="Number of frames, ends included."),
    output: Path = opt.output_option("Output folder: frames, a contact sheet, and the GIF."),
    gif: bool = typer.Option(False, "--gif", help="Also write an animated GIF."),
    frame_ms: int = typer.Option(150, "--frame-ms", min=10, help="GIF frame duration in milliseconds."),
    batch_size: int = typer.Option(4, "--batch-size", min=1, help="Frames per forward pass."),
    size: Optional[int] = opt.SIZE,
    iterations: Optional[int] = opt.ITERATIONS,
    detail: Optional[float] = opt.DETAIL,
    palette: Optional[float] = opt.PALETTE,
    precision: Optional[str] = opt.PRECISION,
    compile_models: Optional[bool] = opt.COMPILE,
    seed: Optional[int] = opt.SEED,
    weights: Optional[str] = opt.WEIGHTS,
    config: str = opt.CONFIG,
    backend: str = opt.BACKEND,
) -> None:
    """Interpolate from the content's own style (or STYLE) to STYLE (or --to) in ALADIN space.

    Frame 0 is the reconstruction with the content's own codes; the last frame equals
    `hypernst stylize` with the same style and seed.
    """
    import torch

    from hypernst_cli.errors import UsageError
    from hypernst_cli.io import save_gif, save_image
    from hypernst_cli.io.contact_sheet import contact_sheet
    from hypernst_cli.pipeline.palette import between
    from hypernst_cli.io.tensors import to_uint8
    from hypernst_cli.pipeline.stylize import linspace, resize_uint8

    if output.suffix:
        raise UsageError(f"-o {output}: interpolate writes several files; give a folder")
    for image in (style, to):  # before the models load
        if image is not None:
            opt.require_file(image, str(image), hint="give a style image file")
    opt.check_output_folder(output)
    # nor may a frame, or the removal of an earlier run's frames, replace an input
    walk = {f"frame_{i:03d}.png" for i in range(steps)} | {"contact_sheet.png", "interpolation.gif"}
    opt.check_frames_spare_inputs(output, walk, [content, style, *([to] if to else [])],
                                  "the walk's {name}", stale_prefix="frame_")
    if to is not None and to.resolve() == style.resolve():
        STATE.warn(f"--to {to} is STYLE itself: every frame is the same")
    pipe = opt.load_pipeline(weights=weights, config=config, backend=backend, seed=seed,
                             iterations=iterations,
                             precision=precision, compile=compile_models, detail=detail,
                             palette=palette)
    face = pipe.prepare(content)[0]
    start = pipe.code_table(face, style) if to is not None else face.own_codes.table
    end = pipe.code_table(face, to if to is not None else style)
    first = pipe.palette_for(style) if to is not None else None
    last = pipe.palette_for(to if to is not None else style)
    ts = linspace(0.0, 1.0, steps)
    codes = [torch.lerp(start, end, t) for t in ts]
    palettes = [between(first, last, t) for t in ts]
    frames = []
    for i in range(0, len(codes), batch_size):
        chunk = codes[i : i + batch_size]
        result = pipe.generate([face] * len(chunk), torch.stack(chunk),
                               palettes=palettes[i : i + batch_size])
        frames += [resize_uint8(f, size) for f in to_uint8(result.images)]
    for i, frame in enumerate(frames):
        save_image(frame, output / f"frame_{i:03d}.png")
    # an earlier run into this folder with more --steps left frames past this run's end: they
    # would be taken for this walk's (frame_*.png), so they go
    opt.remove_stale_frames(output, "frame_", len(frames))
    labels = [f"t={t:.2f}" for t in ts]
    save_image(contact_sheet([frames], cell=frames[0].shape[0], col_labels=labels),
               output / "contact_sheet.png")
    if gif:
        save_gif(frames, output / "interpolation.gif", duration_ms=frame_ms)
    else:  # an earlier walk's GIF would pass for this one's
        (output / "interpolation.gif").unlink(missing_ok=True)
    STATE.info(f"wrote {len(frames)} frames to {output}")

