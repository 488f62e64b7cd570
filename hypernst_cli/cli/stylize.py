"""``hypernst stylize``: content photos x style images -> stylized portraits."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from hypernst_cli.cli import options as opt
from hypernst_cli.cli.app import app
from hypernst_cli.cli.state import STATE

DEFAULT_NAME = "{content}__{style}"


@app.command()
def stylize(
    inputs: list[str] = typer.Argument(
        ..., metavar="CONTENT... STYLE",
        help="Content photos (files, folders, globs) followed by ONE style (file, folder or glob). "
             "With --style, every argument is content.",
    ),
    output: Path = opt.output_option("Output file (one result) or folder."),
    style: Optional[list[str]] = typer.Option(
        None, "--style", "-s", help="Style image(s), file/folder/glob; repeatable."),
    # the range check of --strength: [0, 1], nan refused (blend interpolates between the
    # content's own codes and the style's, never extrapolates)
    strength: float = typer.Option(
        1.0, "--strength", callback=opt.unit_fraction, metavar="[0<=x<=1]",
        help="0 = the content's own style (reconstruction), 1 = the style image's."),
    region: Optional[list[str]] = typer.Option(
        None, "--region",
        help="Per-region styles, e.g. hair=a.png,face=b.png,background=c.png (others: the style); "
             "repeatable."),
    pairs: bool = typer.Option(False, "--pairs", help="Zip contents with styles instead of all pairs."),
    paste_back: bool = typer.Option(
        False, "--paste-back",
        help="Paste the result into the full photo, at the face's size there (--size does not "
             "apply)."),
    all_faces: bool = typer.Option(False, "--all-faces", help="Every face of a photo, not only the largest."),
    latent: Optional[Path] = typer.Option(
        None, "--latent",
        help="Reuse a latent (W+, and F if saved) from `hypernst invert` (one content)."),
    name: str = typer.Option(
        DEFAULT_NAME, "--name",
        help="Output name template: {content} {style} {face} {strength}; suffix from --format."),
    fmt: Optional[str] = typer.Option(
        None, "--format",
        help="png | jpg | webp: the files written into an -o folder (default png); one -o FILE "
             "takes its own suffix's format, and a different --format is refused."),
    batch_size: int = typer.Option(4, "--batch-size", min=1, help="Faces per forward pass."),
    shard: Optional[str] = opt.SHARD,
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
    overwrite: bool = opt.OVERWRITE,
    as_json: bool = opt.JSON,
    no_cache: bool = opt.NO_CACHE,
) -> None:
    """Stylize portrait photos in the style of example images (HyperNST).

    Examples: `hypernst stylize face.jpg style.png -o out.png`;
    `hypernst stylize photos/ styles/ -o out/ --json` (every photo x every style, resumable).
    """
    from hypernst_cli.cli.batch import (
        check_distinct_outputs,
        exit_with,
        parse_shard,
        run_batch,
        take_shard,
    )
    from hypernst_cli.errors import UsageError
    from hypernst_cli.io import collect_images
    from hypernst_cli.io.inputs import unique_stems

    if style:
        content_specs, style_specs = inputs, style
    elif len(inputs) >= 2:
        content_specs, style_specs = inputs[:-1], inputs[-1:]
    else:
        raise UsageError("give content photos and a style image",
                         hint="e.g. hypernst stylize face.jpg style.png -o out.png")
    # --pairs zips the lists as given: the same photo twice, each with its own style, is a pair
    # each (dropping the repeat would leave the lists of different lengths)
    contents = collect_images(content_specs, unique=not pairs)
    styles = collect_images(style_specs, unique=not pairs)
    if not contents or not styles:
        raise UsageError("no content or no style images found in the given inputs")
    regions = {k: Path(v) for k, v in opt.parse_region_spec(region).items()} if region else {}
    for p in regions.values():
        opt.require_file(p, f"--region: {p}", hint="give one style image per region")
    if pairs and len(contents) != len(styles):
        raise UsageError(f"--pairs needs as many contents as styles ({len(contents)} vs {len(styles)})")
    if latent is not None and len(contents) != 1:
        raise UsageError("--latent goes with exactly one content photo")
    if fmt is not None and fmt not in ("png", "jpg", "webp"):
        raise UsageError(f"unknown --format '{fmt}'", hint="use png, jpg or webp")

    if output.suffix.lower() == ".gif":  # not a still-image format we write: not a folder either
        raise UsageError(f"-o {output}: GIF is not an output format",
                         hint="use .png, .jpg or .webp, or give a folder")
    out_real = output.resolve()
    if out_real in {p.resolve() for p in (*contents, *styles, *regions.values())}:
        raise UsageError(f"-o {output} is an input file", hint="choose another output path with -o")
    # a second run would stylize the first run's outputs
    opt.check_not_an_input_folder(output, [*content_specs, *style_specs])
    if all_faces and opt.is_image_file(output):
        raise UsageError(f"-o {output}: --all-faces writes one file per face",
                         hint="give a folder with -o")
    _check_name_template(name)
    combos = list(zip(contents, styles)) if pairs else [(c, s) for s in styles for c in contents]
    single_file = opt.is_image_file(output)
    if not single_file and not output.exists() and output.suffix[1:].isalpha() \
            and len(output.suffix) <= 5:
        # `-o result.jgp`: a mistyped image name would quietly become a folder
        STATE.warn(f"-o {output}: '{output.suffix}' is not an image format (png, jpg, webp), so "
                   "it is taken as a folder")
    if single_file and len(combos) != 1:
        raise UsageError(f"-o {output} is a file but there are {len(combos)} results",
                         hint="give a folder with -o")
    if single_file and fmt is not None:
        # one output file is written in its suffix's format: a --format that disagrees would be
        # silently ignored, and the user cannot tell which of the two they will get
        suffix = output.suffix.lower().lstrip(".").replace("jpeg", "jpg")
        if suffix != fmt:
            raise UsageError(f"-o {output} is a .{suffix} file but --format is {fmt}",
                             hint=f"a single output file takes -o's suffix: drop --format, or "
                                  f"use -o {output.with_suffix('.' + fmt)}")
    fmt = fmt or "png"
    # file stems, prefixed by their folder where two inputs share a name (no output collisions)
    c_stems, s_stems = unique_stems(contents), unique_stems(styles)
    items = [_item(c, s, (c_stems[c], s_stems[s]), output, name, fmt, strength, all_faces,
                   single_file) for c, s in combos]
    # before sharding: shards must not write each other's files; nor any an input
    check_distinct_outputs(items, also_inputs=regions.values())
    opt.check_output_folder(output.parent if single_file else output)
    items = take_shard(items, parse_shard(shard))

    if paste_back and size is not None:
        STATE.warn(f"--size {size} does not apply with --paste-back: the stylized face is pasted "
                   "at its own size into the photo, which keeps its size")
    latent_tensor = _read_latent(latent, contents[0]) if latent is not None else None  # early
    pipe = opt.load_pipeline(weights=weights, config=config, backend=backend, seed=seed,
                             iterations=iterations, no_cache=no_cache,
                             precision=precision, compile=compile_models, detail=detail,
                             palette=palette)
    worker = _BatchedWorker(pipe, items, batch_size=batch_size, strength=strength, regions=regions,
                            paste_back=paste_back, all_faces=all_faces, size=size,
                            overwrite=overwrite, latent=latent_tensor, name=name, fmt=fmt)
    summary = run_batch(items, worker, overwrite=overwrite, as_json=as_json,
                        description="stylizing")
    codes = pipe.provider
    if codes.computed_styles or codes.from_disk:
        STATE.info(f"style codes: {codes.computed_styles} style image(s) encoded, "
                   f"{codes.from_disk} read from the cache")
    exit_with(summary)


def _fields(names: tuple[str, str], strength: float, face: int | str) -> dict[str, Any]:
    return {"content": names[0], "style": names[1], "face": face, "strength": f"{strength:g}"}


#: the fields of --name (plain names only: "{content.upper}" would name a file after a method)
NAME_FIELDS = ("content", "style", "face", "strength")


def _check_name_template(template: str) -> None:
    import string

    from hypernst_cli.errors import UsageError

    hint = "fields: " + " ".join(f"{{{f}}}" for f in NAME_FIELDS)
    if not template.strip():  # it named the file ".png" (hidden) or " .png"
        raise UsageError("invalid --name template: it is empty",
                         hint=f"e.g. --name '{DEFAULT_NAME}'")
    try:
        parsed = [(f, conversion) for _, f, _, conversion in string.Formatter().parse(template)
                  if f is not None]
    except ValueError as exc:
        raise UsageError(f"invalid --name template '{template}' ({exc})", hint=hint) from None
    for field, conversion in parsed:
        if field not in NAME_FIELDS:
            raise UsageError(f"invalid --name template '{template}': unknown field '{{{field}}}'",
                             hint=hint)
        if conversion:  # {content!r} put quotes into the file name
            raise UsageError(f"invalid --name template '{template}': '!{conversion}' in "
                             f"'{{{field}}}'", hint=f"write the field alone, {{{field}}}")
    if "/" in template or "\\" in template or template.startswith("."):
        raise UsageError(f"invalid --name template '{template}': a file name, not a path",
                         hint="the folder is -o's")
    if Path(template).suffix.lower() in (".png", ".jpg", ".jpeg", ".webp"):
        raise UsageError(f"invalid --name template '{template}': no suffix",
                         hint="the suffix comes from --format")


def _render_name(template: str, fields: dict[str, Any]) -> str:
    from hypernst_cli.errors import UsageError

    try:
        return template.format(**fields)
    except (KeyError, IndexError, ValueError) as exc:
        raise UsageError(f"invalid --name template '{template}' ({exc})",
                         hint="fields: {content} {style} {face} {strength}") from None


def _item(content: Path, style: Path, names: tuple[str, str], output: Path, template: str,
          fmt: str, strength: float, all_faces: bool, single_file: bool) -> Any:
    from hypernst_cli.cli.batch import WorkItem

    manifest = None
    if single_file:
        out = output
    else:
        stem = _render_name(template, _fields(names, strength, 0))
        if all_faces:
            # one file per face, as many as the photo has: the photo is done when its manifest
            # (written by the batch runner after the last face) and every face it lists exist
            manifest = output / f".{stem}.faces.json"
            stem += "_face0"
        out = output / f"{stem}.{fmt}"
    return WorkItem(label=f"{content} x {style}", inputs={"input": str(content), "style": str(style)},
                    outputs=[out], payload=(content, style, names), manifest=manifest)


def _read_latent(path: Path, content: Path | None = None) -> Any:
    """A latent file of `hypernst invert` as a core.Latent: W+, and F when the file has one
    (spatial models); older files hold W+ only. With ``content``: a warning when the latent was
    inverted from another photo (its face, not this one's, is what renders)."""
    from hypernst_cli.pipeline.core import Latent
    from hypernst_cli.weights.checkpoint import load_tensors

    from hypernst_cli.errors import HypernstError, UsageError

    hint = "make one with `hypernst invert PHOTO -o FOLDER`"
    opt.require_file(path, f"--latent {path}", hint=hint)  # it was called "not a safetensors file"
    try:
        tensors, meta = load_tensors(path)
    except HypernstError:  # not safetensors at all (said as a latent's problem, not weights')
        raise UsageError(f"{path}: not a latent written by `hypernst invert` (not a safetensors "
                         "file)", hint=hint) from None
    if "wplus" not in tensors:
        raise UsageError(f"{path}: not a latent written by `hypernst invert` (no 'wplus' tensor)",
                         hint=hint)
    if content is not None and meta.get("source_sha256"):
        from hypernst_cli.io.inputs import file_sha256

        if Path(content).is_file() and file_sha256(content) != meta["source_sha256"]:
            STATE.warn(f"{path} was inverted from {meta.get('source', 'another photo')}, not "
                       f"{content}: the output shows that face")
    return Latent(tensors["wplus"], tensors.get("features"))


class _BatchedWorker:
    """Per-item worker that computes the next ``batch_size`` pending items in one forward pass.

    The batch runner still sees one item at a time (per-item status, skip and failure rules); the
    worker looks ahead so the generator runs on batches.
    """

    def __init__(self, pipe: Any, items: list, *, batch_size: int, strength: float, regions: dict,
                 paste_back: bool, all_faces: bool, size: int | None, overwrite: bool,
                 latent: Any, name: str, fmt: str) -> None:
        self.pipe = pipe
        self.items = items
        self.order = {id(it): i for i, it in enumerate(items)}
        self.batch_size = batch_size
        self.strength = strength
        self.regions = regions
        self.paste_back = paste_back
        self.all_faces = all_faces
        self.size = size
        self.overwrite = overwrite
        self.latent = latent
        self.name = name
        self.fmt = fmt
        self.done: dict[int, Any] = {}  # id(item) -> list of (path, image) or an exception

    def _pending(self, start: int) -> list:
        from hypernst_cli.cli.batch import is_done

        chosen = []
        for it in self.items[start:]:
            if id(it) in self.done:
                continue
            if not self.overwrite and is_done(it):
                continue
            chosen.append(it)
            if len(chosen) == self.batch_size:
                break
        return chosen

    def __call__(self, item: Any) -> Any:
        import time

        from hypernst_cli.cli.batch import Done

        if id(item) not in self.done:
            self._compute(self._pending(self.order[id(item)]) or [item])
        result = self.done.pop(id(item))
        if isinstance(result, Exception):
            raise result
        outputs, timings = result
        from hypernst_cli.io import save_image

        t0 = time.perf_counter()
        for path, image in outputs:
            save_image(image, path)
        timings["write"] = time.perf_counter() - t0
        timings["total"] = sum(timings.values())  # this item's share, even when batched
        # every face's file (face 0 first), for --json and the item's manifest
        return Done(outputs=[path for path, _ in outputs], timings=timings)

    def _compute(self, batch: list) -> None:
        import time

        from hypernst_cli.errors import HypernstError
        from hypernst_cli.io.tensors import to_uint8
        from hypernst_cli.pipeline.stylize import resize_uint8

        faces, codes, palettes, owners = [], [], [], []
        for it in batch:
            content, style, _ = it.payload
            try:
                t0 = time.perf_counter()
                prepared = self.pipe.prepare(content, all_faces=self.all_faces, latent=self.latent)
                t1 = time.perf_counter()
                for face in prepared:
                    codes.append(self.pipe.code_table(face, style, strength=self.strength,
                                                        regions=self.regions))
                    palettes.append(self.pipe.palette_for(style, strength=self.strength,
                                                          regions=self.regions))
                    faces.append(face)
                    owners.append(it)
                self.done[id(it)] = ([], {"prepare": t1 - t0,
                                          "style_codes": time.perf_counter() - t1})
            except HypernstError as exc:
                self.done[id(it)] = exc
        if not faces:
            return
        t0 = time.perf_counter()
        result = self.pipe.generate(faces, codes, palettes=palettes)
        model_time = (time.perf_counter() - t0) / len(faces)
        images = to_uint8(result.images)
        for face, image, it in zip(faces, images, owners):
            outputs, timings = self.done[id(it)]
            timings["model"] = timings.get("model", 0.0) + model_time
            if self.paste_back:
                t1 = time.perf_counter()
                # the head only (face and hair, feathered inside their edge): the crop's own background
                # would show as a stylized square around it. The model's own output, not
                # --size's: the warp scales it to the face's size in the photo, and shrinking it
                # first only blurred the pasted face
                image = self.pipe.faces.paste_back(face.photo, image, face.aligned,
                                                   regions=face.mask.cpu().numpy())
                timings["paste_back"] = time.perf_counter() - t1
            else:
                image = resize_uint8(image, self.size)
            outputs.append((self._path(it, face.index), image))

    def _path(self, item: Any, face: int) -> Path:
        out = item.outputs[0]
        if not self.all_faces:
            return out
        stem = _render_name(self.name, _fields(item.payload[2], self.strength, face))
        return out.with_name(f"{stem}_face{face}.{self.fmt}")
