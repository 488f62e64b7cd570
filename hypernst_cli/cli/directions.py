"""``hypernst directions fit|check``: fit InterFaceGAN edit directions for a model, and verify them
with landmark measures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from hypernst_cli.cli import options as opt
from hypernst_cli.cli.app import app
from hypernst_cli.cli.state import STATE

directions_app = typer.Typer(
    name="directions",
    help="Edit directions (age, smile, pose): fit them for a model, check what they do.",
    no_args_is_help=True,
)
app.add_typer(directions_app, name="directions")

REPORT_FILE = "directions.json"


def _parse_conditions(specs: list[str], known: tuple[str, ...]) -> dict[str, list[str]]:
    from hypernst_cli.errors import UsageError

    out: dict[str, list[str]] = {}
    for spec in specs:
        name, sep, rest = spec.partition(":")
        others = [o.strip() for o in rest.split(",") if o.strip()]
        if not sep or not others or name not in known or any(o not in known for o in others):
            raise UsageError(f"invalid --condition '{spec}'",
                             hint=f"use NAME:OTHER[,OTHER] with names from {', '.join(known)}, "
                                  "e.g. age:smile")
        out.setdefault(name, []).extend(others)
    return out


@directions_app.command("fit")
def fit(
    data: list[str] = typer.Option(..., "--data", help="Photos: files, folders or globs (repeatable)."),
    output: Path = opt.output_option("Output folder: one NAME.safetensors per direction and "
                                     "directions.json."),
    attributes: str = typer.Option("age,smile,pose", "--attributes", "-a",
                                   help="Directions to fit (age needs --age-from-filename)."),
    age_from_filename: bool = typer.Option(
        False, "--age-from-filename",
        help="Read ages from UTKFace file names (age_gender_race_date.jpg.chip.jpg)."),
    max_images: Optional[int] = typer.Option(
        None, "--max-images", min=2, help="Use a random sample of this many photos (--seed)."),
    method: str = typer.Option(
        "svm", "--method",
        help="svm: linear SVM on the label extremes (InterFaceGAN) | ridge: ridge regression."),
    svm_c: float = typer.Option(
        0.03, "--svm-c", min=1e-6, callback=opt.finite,
        help="The SVM's C on unit-scale latents: smaller keeps the direction where the faces' "
             "latents vary (InterFaceGAN uses 1 with far more samples)."),
    layers: str = typer.Option("mean", "--layers",
                               help="mean: fit on the mean W+ latent, one [1, D] direction | "
                                    "flat: all layers, an [L, D] direction."),
    extremes: float = typer.Option(0.3, "--extremes", min=0.01, max=0.5,
                                   help="Fraction of each end of a continuous label used by svm."),
    test_fraction: float = typer.Option(0.2, "--test-fraction", min=0.0, max=0.9,
                                        help="Held out to measure each direction."),
    condition: list[str] = typer.Option(
        [], "--condition",
        help="NAME:OTHER[,OTHER]: make NAME orthogonal to OTHER (conditional editing; repeatable)."),
    into: Optional[Path] = typer.Option(
        None, "--into", help="Also add the directions to this model folder (the fitted model)."),
    batch_size: int = typer.Option(16, "--batch-size", min=1, help="Photos per encoder batch."),
    min_photos: int = typer.Option(
        10, "--min-photos", min=2,
        help="Labelled photos a direction needs; with fewer it is reported as failed."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sample and the held-out split."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    weights: Optional[str] = opt.WEIGHTS,
    config: str = opt.CONFIG,
    backend: str = opt.BACKEND,
) -> None:
    """Fit age / smile / pose directions in W+ for a model (InterFaceGAN).

    Each photo's largest face is aligned and inverted with the model's e4e encoder; smile and pose
    (yaw) are measured from dlib's 68 landmarks of the aligned crop, age is read from UTKFace file
    names. A linear SVM on the label extremes (or ridge regression) gives each unit direction,
    measured on held-out photos. Unreadable photos and photos without a face are skipped and
    counted.
    """
    import random

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from hypernst_cli.device import resolve_device
    from hypernst_cli.errors import UsageError
    from hypernst_cli.io import atomic_write_text, collect_images
    from hypernst_cli.pipeline import directions_fit as df
    from hypernst_cli.pipeline.models import load_models
    from hypernst_cli.pipeline.session import face_processor

    names = [a.strip().lower() for a in attributes.split(",") if a.strip()]
    unknown = [a for a in names if a not in df.ATTRIBUTES]
    if not names or unknown:
        raise UsageError(f"unknown attribute(s): {', '.join(unknown) or '(none given)'}",
                         hint=f"choose from {', '.join(df.ATTRIBUTES)}")
    if "age" in names and not age_from_filename:
        if attributes != "age,smile,pose":
            raise UsageError("the age direction needs age labels",
                             hint="pass --age-from-filename with UTKFace photos")
        names.remove("age")  # the default list: fit what the data can label
    if method not in ("svm", "ridge"):
        raise UsageError(f"unknown --method '{method}'", hint="use svm or ridge")
    if layers not in df.LAYER_MODES:
        raise UsageError(f"unknown --layers '{layers}'", hint="use mean or flat")
    if output.suffix:
        raise UsageError(f"-o {output}: directions are written into a folder; give a folder")
    conditions = _parse_conditions(condition, tuple(names))

    paths = collect_images(data)
    if not paths:
        raise UsageError("no photos found in --data", hint="give image files, folders or globs")
    if max_images is not None and len(paths) > max_images:
        # a random sample: UTKFace's sorted names would otherwise give one age range
        paths = sorted(random.Random(seed).sample(paths, max_images))

    dev = resolve_device(STATE.device)
    models = load_models(weights, config, dev, ("generator", "encoder"))
    if into is not None:  # fail before the long part, not after it
        df.check_target(into, models.fingerprints["generator"])
    faces = face_processor(backend, dev)
    STATE.info(f"model: {models.config.name} from {models.source}; {len(paths)} photos; "
               f"fitting {', '.join(names)}")

    progress = Progress(TextColumn("encoding"), BarColumn(), MofNCompleteColumn(),
                        TimeRemainingColumn(), console=STATE.err, transient=True,
                        disable=STATE.quiet or as_json)
    with progress:
        task = progress.add_task("encoding", total=len(paths))
        encoded = df.encode_photos(
            paths, models.encoder, faces, models.config.resolution, dev,
            age_from_filename=age_from_filename, landmarks=bool({"smile", "pose"} & set(names)),
            batch_size=batch_size, on_item=lambda _: progress.advance(task))
    if not encoded.samples:
        raise UsageError(f"none of the {len(paths)} photos could be used "
                         f"(skipped: {encoded.skip_counts()})")

    kind = "classification" if method == "svm" else "regression"
    fits, failures = df.fit_attributes(encoded, names, kind=kind, layers=layers, extremes=extremes,
                                       test_fraction=test_fraction, conditions=conditions,
                                       c=svm_c, seed=seed, min_photos=min_photos)
    if not fits:
        raise UsageError("no direction could be fitted: " +
                         "; ".join(f"{k}: {v}" for k, v in failures.items()),
                         hint=f"use at least {min_photos} photos per direction, with varied labels")

    source = {"config": models.config.name, "weights": str(models.source),
              "generator_fingerprint": models.fingerprints["generator"],
              "encoder_fingerprint": models.fingerprints["encoder"]}
    meta = {name: df.direction_metadata(name, fit, encoded) for name, fit in fits.items()}
    output.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, fit in fits.items():
        files[name] = str(df.save_direction_file(output / f"{name}.safetensors", name,
                                                 fit.direction, meta[name], source))
    added = None
    if into is not None:
        added = str(df.add_to_model(into, {n: f.direction for n, f in fits.items()}, meta,
                                    generator_fingerprint=models.fingerprints["generator"]))
    report = {
        "photos": len(paths),
        "encoded": len(encoded.samples),
        "skipped": encoded.skip_counts(),
        "skipped_photos": encoded.skipped,
        "directions": meta,
        "files": files,
        "failed": failures,
        "into": added,
        "source_model": source,
    }
    atomic_write_text(output / REPORT_FILE, json.dumps(report, indent=2, sort_keys=True) + "\n")

    if as_json:
        STATE.out.print(json.dumps(report), markup=False, highlight=False)
    else:
        _print_fit_table(report)
    if failures:
        raise typer.Exit(1)


def _print_fit_table(report: dict) -> None:
    from rich.table import Table

    table = Table(title=f"{report['encoded']} of {report['photos']} photos encoded; skipped: "
                        f"{report['skipped'] or 'none'}", title_justify="left")
    for col in ("direction", "label", "n", "train", "held out", "accuracy", "correlation"):
        table.add_column(col)
    for name, m in report["directions"].items():
        def fmt(x: float | None) -> str:
            return "-" if x is None else f"{x:.3f}"

        table.add_row(name, m["label"], str(m["n"]), str(m["n_train"]), str(m["n_test"]),
                      fmt(m["heldout_accuracy"]), fmt(m["heldout_correlation"]))
    STATE.out.print(table)
    for path in report["files"].values():
        STATE.out.print(f"wrote {path}", markup=False)
    for name, why in report["failed"].items():
        STATE.warn(f"{name}: not fitted ({why})")
    if report["into"]:
        STATE.info(f"added {', '.join(report['directions'])} to {report['into']}")


#: direction name -> the landmark measure it should move
MEASURE_OF = {"smile": "smile", "pose": "yaw", "yaw": "yaw"}


@directions_app.command("check")
def check(
    direction: str = typer.Option(..., "--direction", "-d", help="age | smile | pose | FILE.safetensors"),
    content: list[str] = typer.Option(..., "--content", "-c",
                                      help="Face photos: files, folders or globs (repeatable)."),
    strength: str = opt.EDIT_STRENGTH,
    steps: int = typer.Option(5, "--steps", min=2, help="Number of strengths across the range."),
    measure: str = typer.Option("auto", "--measure",
                                help="auto (smile for smile, yaw for pose) | smile | yaw."),
    expect: str = typer.Option("auto", "--expect",
                               help="auto (smile: increasing, else either) | increasing | "
                                    "decreasing | any."),
    landmarks: str = typer.Option(
        "detect", "--landmarks",
        help="detect: dlib's detector on each render | aligned: the predictor on the FFHQ face box."),
    tolerance: float = typer.Option(0.0, "--tolerance", min=0.0, callback=opt.finite,
                                    help="Steps against the trend smaller than this are allowed."),
    offsets: bool = typer.Option(True, "--offsets/--no-offsets",
                                 help="Render with the hyper-network's offsets (as `edit`) or "
                                      "plain G(w+)."),
    follow: bool = opt.FOLLOW,
    sheet: Optional[Path] = typer.Option(None, "--sheet", help="Also write the renders as a grid."),
    require: bool = typer.Option(False, "--require-monotonic",
                                 help="Exit 1 unless every face passes."),
    as_json: bool = typer.Option(False, "--json", help="One JSON line per face and a summary."),
    iterations: Optional[int] = opt.ITERATIONS,
    weights: Optional[str] = opt.WEIGHTS,
    config: str = opt.CONFIG,
    backend: str = opt.BACKEND,
) -> None:
    """Render edits along a strength range and measure their landmarks: does the measure change
    monotonically (and which way, with Spearman's correlation) for every face?"""
    from hypernst_cli.errors import HypernstError, UsageError
    from hypernst_cli.eval.landmarks import MEASURES, measure_image, monotonic_trend
    from hypernst_cli.io import collect_images, save_image
    from hypernst_cli.pipeline.directions import resolve_direction
    from hypernst_cli.io.tensors import to_uint8
    from hypernst_cli.pipeline.stylize import linspace, parse_strength_range

    if landmarks not in ("detect", "aligned"):
        raise UsageError(f"unknown --landmarks '{landmarks}'", hint="use detect or aligned")
    if measure != "auto" and measure not in MEASURES:
        raise UsageError(f"unknown --measure '{measure}'", hint="use auto, smile or yaw")
    if expect not in ("auto", "increasing", "decreasing", "any"):
        raise UsageError(f"unknown --expect '{expect}'",
                         hint="use auto, increasing, decreasing or any")
    lo, hi = parse_strength_range(strength)
    if lo == hi:
        raise UsageError(f"--strength {strength}: give a range A..B with A != B")
    alphas = linspace(lo, hi, steps)
    paths = collect_images(content)
    if not paths:
        raise UsageError("no content photos found", hint="give face photos with --content")

    pipe = opt.load_pipeline(weights=weights, config=config, backend=backend, seed=None,
                             iterations=iterations, styled=False)  # renders the face's own codes
    name, vector = resolve_direction(direction, pipe.models)
    target = MEASURE_OF.get(name) if measure == "auto" else measure
    if expect == "auto":
        expect = "increasing" if target == "smile" else "any"

    records, rows = [], []
    for path in paths:
        try:
            face = pipe.prepare(path)[0]
        except HypernstError as exc:
            if len(paths) == 1:
                raise
            records.append({"content": str(path), "ok": False, "error": exc.one_line()})
            _emit_check(records[-1], as_json)
            continue
        base = pipe.generate([face], face.own_codes.table)
        values: dict[str, list[float | None]] = {m: [] for m in MEASURES}
        frames = []
        for alpha in alphas:
            frame = to_uint8(pipe.render_edit(face, vector, alpha, base if offsets else None,
                                              follow=follow))[0]
            frames.append(frame)
            found = measure_image(frame, box=landmarks)
            for m in MEASURES:
                values[m].append(None if found is None else round(found[m], 5))
        trends = {m: monotonic_trend(alphas, values[m], tolerance=tolerance) for m in MEASURES}
        passed = None
        if target is not None:
            t = trends[target]
            passed = t.monotonic and (expect == "any" or t.direction == expect)
        records.append({"content": str(path), "ok": True, "direction": name, "measure": target,
                        "strengths": [round(a, 4) for a in alphas], "values": values,
                        "trends": {m: t.to_dict() for m, t in trends.items()}, "passed": passed})
        rows.append(frames)
        _emit_check(records[-1], as_json)

    checked = [r for r in records if r["ok"]]
    summary = {"direction": name, "measure": target, "expect": expect, "faces": len(records),
               "failed": len(records) - len(checked),
               "passed": sum(bool(r["passed"]) for r in checked) if target else None,
               "mean_spearman": _mean([r["trends"][target]["spearman"] for r in checked])
               if target else None}
    if sheet is not None and rows:
        from hypernst_cli.io.contact_sheet import contact_sheet

        save_image(contact_sheet(rows, cell=min(256, rows[0][0].shape[0] * 2),
                                 row_labels=[Path(r["content"]).stem for r in checked],
                                 col_labels=[f"{name} {a:+.2f}" for a in alphas]), sheet)
    if as_json:
        STATE.out.print(json.dumps({"summary": summary}), markup=False, highlight=False)
    else:
        verdict = (f"{summary['passed']} of {len(checked)} faces change {target} "
                   f"monotonically ({expect})" if target else
                   f"no landmark measure for '{name}' (pass --measure smile|yaw)")
        STATE.out.print(f"{name}: {verdict}; mean Spearman "
                        f"{summary['mean_spearman'] if summary['mean_spearman'] is not None else '-'}",
                        markup=False)
    if summary["failed"] and summary["failed"] == len(records):
        raise typer.Exit(2)
    if summary["failed"] or (require and (target is None or summary["passed"] != len(checked))):
        raise typer.Exit(1)


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(sum(known) / len(known), 4) if known else None


def _emit_check(record: dict, as_json: bool) -> None:
    if as_json:
        STATE.out.print(json.dumps(record), markup=False, highlight=False)
        return
    if not record["ok"]:
        STATE.err.print(f"[red]failed[/] {record['error']}", highlight=False)
        return
    target = record["measure"]
    parts = []
    for m, t in record["trends"].items():
        vals = " ".join("-" if v is None else f"{v:.3f}" for v in record["values"][m])
        rho = "-" if t["spearman"] is None else f"{t['spearman']:+.2f}"
        mark = "*" if m == target else " "
        parts.append(f"  {mark}{m}: {vals}  ({t['direction']}, spearman {rho})")
    verdict = {True: "PASS", False: "FAIL", None: "-"}[record["passed"]]
    STATE.out.print(f"{verdict} {record['content']}\n" + "\n".join(parts), markup=False)
