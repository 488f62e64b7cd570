"""``hypernst invert``: the W+ latent of each content photo, and its reconstructions."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from hypernst_cli.cli import options as opt
from hypernst_cli.cli.app import app


@app.command()
def invert(
    contents: list[str] = typer.Argument(..., help="Content photos: files, folders or globs."),
    output: Path = opt.output_option("Output folder."),
    size: Optional[int] = opt.SIZE,
    iterations: Optional[int] = opt.ITERATIONS,
    precision: Optional[str] = opt.PRECISION,
    compile_models: Optional[bool] = opt.COMPILE,
    seed: Optional[int] = opt.SEED,
    weights: Optional[str] = opt.WEIGHTS,
    config: str = opt.CONFIG,
    backend: str = opt.BACKEND,
    overwrite: bool = opt.OVERWRITE,
    as_json: bool = opt.JSON,
) -> None:
    """Invert faces into the generator's W+ space.

    Writes NAME.latent.safetensors (W+, and the feature map F of a model with the spatial path;
    reuse it with `stylize --latent` / `edit --latent`),
    NAME_e4e.png (the plain e4e reconstruction G(w+)) and NAME_reconstruction.png (HyperNST's
    reconstruction: the hyper-network conditioned on the photo's own style codes).
    """
    from hypernst_cli.cli.batch import WorkItem, check_distinct_outputs, exit_with, run_batch
    from hypernst_cli.errors import UsageError
    from hypernst_cli.io import collect_images
    from hypernst_cli.io.inputs import unique_stems

    paths = collect_images(contents)
    if not paths:
        raise UsageError("no content images found in the given inputs")
    if output.suffix:
        raise UsageError(f"-o {output}: invert writes several files; give a folder")
    # a rerun would invert the last run's reconstructions
    opt.check_not_an_input_folder(output, contents, what="the latents")
    opt.check_output_folder(output)
    # file stems, prefixed by their folder where two inputs share a name (no output collisions)
    stems = unique_stems(paths)
    items = [
        WorkItem(str(p), {"input": str(p)},
                 [output / f"{stems[p]}.latent.safetensors", output / f"{stems[p]}_e4e.png",
                  output / f"{stems[p]}_reconstruction.png"], payload=p)
        for p in paths
    ]
    check_distinct_outputs(items)  # before the models load: no output may replace an input
    pipe = opt.load_pipeline(weights=weights, config=config, backend=backend, seed=seed,
                             iterations=iterations,
                             precision=precision, compile=compile_models, styled=False)

    def work(item: WorkItem) -> dict[str, float]:
        import time

        from hypernst_cli.io import save_image
        from hypernst_cli.io.inputs import file_sha256
        from hypernst_cli.io.tensors import to_uint8
        from hypernst_cli.pipeline.stylize import resize_uint8
        from hypernst_cli.weights.checkpoint import save_tensors

        face = pipe.prepare(item.payload)[0]
        t0 = time.perf_counter()
        result = pipe.generate([face], face.own_codes.table)
        model = time.perf_counter() - t0
        latent_file, e4e_file, recon_file = item.outputs
        tensors = {"wplus": face.wplus.contiguous()}
        if face.features is not None:  # the spatial path's feature map F
            tensors["features"] = face.features.contiguous()
        save_tensors(latent_file, tensors, {
            "format": "hypernst-latent",
            "source": str(item.payload),
            "source_sha256": file_sha256(item.payload),
            "model": pipe.models.source,
            "config": pipe.models.config.name,
            "face_index": face.index,
            "transform": face.aligned.transform.tolist(),
        })
        save_image(resize_uint8(to_uint8(result.initial)[0], size), e4e_file)
        save_image(resize_uint8(to_uint8(result.images)[0], size), recon_file)
        return {**face.timings, "model": model}

    exit_with(run_batch(items, work, overwrite=overwrite, as_json=as_json, description="inverting"))
