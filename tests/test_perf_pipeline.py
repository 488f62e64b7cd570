"""Speed settings of the inference pipeline: precision, compile, CPU threads, batched generation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hypernst_cli.errors import UsageError


@pytest.fixture(scope="module")
def pipe(tiny_model_dir):
    """A pipeline over the random `tiny` model (no face processor: ``generate`` needs none)."""
    from hypernst_cli.pipeline.models import INFERENCE_PARTS, load_models
    from hypernst_cli.pipeline.stylize import HyperNSTPipeline

    models = load_models(str(tiny_model_dir), "tiny", torch.device("cpu"), INFERENCE_PARTS)
    return HyperNSTPipeline(models, faces=None, provider=None, iterations=2, precision="fp32",
                            compile=False)


def _faces(pipe, n: int):
    from hypernst_cli.pipeline.core import invert
    from hypernst_cli.pipeline.style_codes import StyleCodes
    from hypernst_cli.pipeline.stylize import ContentFace

    r = pipe.resolution
    gen = torch.Generator().manual_seed(7)
    faces = []
    for i in range(n):
        image = torch.rand(3, r, r, generator=gen) * 2 - 1
        mask = torch.zeros(r, r, dtype=torch.long)
        mask[r // 4: 3 * r // 4, r // 4: 3 * r // 4] = 1
        mask[: r // 6] = 2
        with torch.inference_mode():
            wplus = invert(pipe.models.encoder, image[None])[0]
        d = pipe.models.config.aladin.code_dim
        codes = torch.randn(3, d, generator=gen)
        faces.append(ContentFace(source=Path(f"{i}.png"), index=0, aligned=None, image=image,
                                 mask=mask, wplus=wplus.clone(),
                                 own_codes=StyleCodes(codes[0], codes, ("patches",) * 3)))
    return faces


def test_precision_and_compile_settings(monkeypatch):
    from hypernst_cli.pipeline.stylize import compile_from_env, precision_from_env

    monkeypatch.delenv("HYPERNST_PRECISION", raising=False)
    monkeypatch.delenv("HYPERNST_COMPILE", raising=False)
    assert precision_from_env() == "fp32"
    assert precision_from_env("BF16") == "bf16"
    monkeypatch.setenv("HYPERNST_PRECISION", "fp16")
    assert precision_from_env() == "fp16"
    assert precision_from_env("fp32") == "fp32"  # an explicit value wins over the environment
    monkeypatch.setenv("HYPERNST_PRECISION", "int8")
    with pytest.raises(UsageError, match="unknown precision 'int8'"):
        precision_from_env()
    assert compile_from_env() is False
    monkeypatch.setenv("HYPERNST_COMPILE", "1")
    assert compile_from_env() is True
    assert compile_from_env(False) is False


def test_batched_generation_equals_one_face_at_a_time(pipe):
    """One batched forward must give each face exactly what it gets alone (per-sample kernels,
    offsets and code maps must not leak between samples)."""
    faces = _faces(pipe, 3)
    codes = torch.stack([f.own_codes.table for f in faces])
    batched = pipe.generate(faces, codes)
    assert batched.images.shape == (3, 3, pipe.resolution, pipe.resolution)
    worst = 0.0
    for i, face in enumerate(faces):
        single = pipe.generate([face], codes[i: i + 1])
        diff = (batched.images[i] - single.images[0]).abs()
        assert diff.max().item() < 1e-3  # float rounding of batched vs single kernels only
        worst = max(worst, diff.mean().item())
    # and the codes matter far more than that rounding: a different style, a different image
    other = pipe.generate(faces[:1], codes[1:2])
    assert (other.images[0] - batched.images[0]).abs().mean().item() > 10 * worst


def test_reduced_precision_and_compile_settings_on_a_cpu(pipe):
    """bf16 autocast stays within one 8-bit grey level of fp32 on average; compile is CUDA-only
    (the CPU runs the eager modules)."""
    from hypernst_cli.pipeline.stylize import HyperNSTPipeline

    fast = HyperNSTPipeline(pipe.models, faces=None, provider=None, iterations=2,
                            precision="bf16", compile=True)
    assert fast.generator_for_inference() is pipe.models.generator
    assert fast.hypernet_for_inference() is pipe.models.hypernet
    faces = _faces(pipe, 2)
    codes = torch.stack([f.own_codes.table for f in faces])
    a = pipe.generate(faces, codes)
    b = fast.generate(faces, codes)
    assert b.images.dtype == torch.float32 and b.initial.dtype == torch.float32
    diff = (a.images.clamp(-1, 1) - b.images.clamp(-1, 1)).abs()
    assert 0 < diff.mean().item() < 2 / 255  # reduced precision ran, and stayed close
    # fp32 through the same settings path is the plain eager result, bit for bit
    same = HyperNSTPipeline(pipe.models, faces=None, provider=None, iterations=2, precision="fp32")
    assert torch.equal(same.generate(faces, codes).images, a.images)


def test_threads_follow_the_user_else_the_cores_not_the_load(monkeypatch):
    from hypernst_cli import device as dev

    before = torch.get_num_threads()
    try:
        for name in dev.THREAD_VARIABLES:
            monkeypatch.delenv(name, raising=False)
        # no setting: one thread per usable core, whatever the load average says
        monkeypatch.setattr(dev, "cpu_budget", lambda: 4)
        monkeypatch.setattr(dev.os, "getloadavg", lambda: (3.0, 3.0, 3.0), raising=False)
        assert dev.thread_policy() == (4, dev.thread_policy()[1])
        assert dev.thread_policy()[1].startswith("one per usable core")
        assert dev.configure_cpu_threads() == 4 and torch.get_num_threads() == 4
        # torch's own variables, then the project's, then --threads
        monkeypatch.setenv("MKL_NUM_THREADS", "3")
        assert dev.thread_policy() == (3, "MKL_NUM_THREADS=3")
        monkeypatch.setenv("OMP_NUM_THREADS", "2,1")  # OpenMP's nested form: the outer level
        assert dev.thread_policy() == (2, "OMP_NUM_THREADS=2,1")
        monkeypatch.setenv("HYPERNST_THREADS", "1")
        assert dev.configure_cpu_threads() == 1 and torch.get_num_threads() == 1
        dev.request_threads(2)
        assert dev.thread_policy() == (2, "--threads 2")
        dev.request_threads(None)
        monkeypatch.setenv("HYPERNST_THREADS", "zero")
        with pytest.raises(UsageError, match="HYPERNST_THREADS"):
            dev.configure_cpu_threads()
        with pytest.raises(UsageError, match="--threads"):
            dev.request_threads(0)
        monkeypatch.undo()
        # a container limited to one CPU on a bigger machine: one thread
        monkeypatch.setattr(dev, "_cgroup_cpu_quota", lambda: 1.0)
        assert dev.cpu_budget() == 1
        monkeypatch.undo()
        assert dev.cpu_budget() >= 1
    finally:
        dev.request_threads(None)
        torch.set_num_threads(before)


def test_info_shows_the_thread_count_and_why(run_cli, monkeypatch):
    from hypernst_cli import device as dev

    before = torch.get_num_threads()
    try:
        for name in dev.THREAD_VARIABLES:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setattr(dev, "cpu_budget", lambda: 2)
        r = run_cli("--device", "cpu", "info")
        assert r.exit_code == 0 and "CPU threads: 2 (one per usable core" in r.stdout
        r = run_cli("--device", "cpu", "--threads", "1", "info", "--json")
        assert '"reason": "--threads 1"' in r.stdout and '"count": 1' in r.stdout
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        r = run_cli("--device", "cpu", "info")
        assert "CPU threads: 1 (OMP_NUM_THREADS=1)" in r.stdout
    finally:
        dev.request_threads(None)
        torch.set_num_threads(before)


def test_compile_wraps_each_network_once_on_cuda(pipe, monkeypatch):
    """The CUDA compile path (no GPU here: the device is faked and torch.compile recorded)."""
    from hypernst_cli.pipeline.stylize import HyperNSTPipeline

    calls = []

    def fake_compile(net, **kwargs):
        calls.append((net, kwargs))
        return ("compiled", net)

    monkeypatch.setattr(torch, "compile", fake_compile)
    fast = HyperNSTPipeline(pipe.models, faces=None, provider=None, precision="fp32", compile=True)
    fast.device = torch.device("cuda")
    assert fast.generator_for_inference() == ("compiled", pipe.models.generator)
    assert fast.generator_for_inference() == ("compiled", pipe.models.generator)
    assert fast.hypernet_for_inference() == ("compiled", pipe.models.hypernet)
    assert [c[0] for c in calls] == [pipe.models.generator, pipe.models.hypernet]
    assert all(c[1].get("dynamic") is False for c in calls)
    off = HyperNSTPipeline(pipe.models, faces=None, provider=None, compile=False)
    off.device = torch.device("cuda")
    assert off.generator_for_inference() is pipe.models.generator and len(calls) == 2


def test_no_work_repeated_within_a_batch(pipe, monkeypatch):
    """One generate() call: the code map is encoded by E_mask once (not once per iteration), the
    content encoder runs once per iteration, the generator once more for G(w+)."""
    h, g = pipe.models.hypernet, pipe.models.generator
    counts = {"mask": 0, "content": 0, "generator": 0}

    def counting(module, key):
        forward = module.forward

        def wrapped(*a, **k):
            counts[key] += 1
            return forward(*a, **k)

        monkeypatch.setattr(module, "forward", wrapped)

    counting(h.mask_encoder, "mask")
    counting(h.content_encoder, "content")
    counting(g, "generator")
    faces = _faces(pipe, 4)
    pipe.generate(faces, faces[0].own_codes.table)  # one style for the whole batch
    assert counts == {"mask": 1, "content": pipe.iterations, "generator": pipe.iterations + 1}


def test_initial_render_is_memoised_per_content(pipe, monkeypatch):
    """G(w+) depends on the content only: a face repeated in a batch, or stylized again with
    another style, reuses its first render, and the result is exactly the uncached one."""
    from dataclasses import replace

    from hypernst_cli.pipeline.core import stylize_tensors

    faces = _faces(pipe, 2)
    fresh = [replace(f) for f in faces]  # same tensors, no memo
    g = pipe.models.generator
    batches: list[int] = []
    forward = g.forward

    def counting(wplus, **kwargs):
        if kwargs.get("offsets") is None:  # the starting render G(w+)
            batches.append(wplus.shape[0])
        return forward(wplus, **kwargs)

    monkeypatch.setattr(g, "forward", counting)
    codes = torch.stack([faces[0].own_codes.table, faces[1].own_codes.table,
                         faces[1].own_codes.table])
    first = pipe.generate([faces[0], faces[1], faces[0]], codes)
    assert batches == [2]  # two distinct faces rendered once, in one batch
    again = pipe.generate([faces[1], faces[0]], codes[:2])  # other styles, same contents
    assert batches == [2]
    assert faces[0].initial is not None and faces[0].initial.shape == (3, pipe.resolution,
                                                                        pipe.resolution)
    # the memoised path equals the plain tensor core
    m = pipe.models
    with torch.inference_mode():
        plain = stylize_tensors(g, m.hypernet, m.encoder,
                                torch.stack([fresh[1].image, fresh[0].image]),
                                torch.stack([fresh[1].mask, fresh[0].mask]), codes[:2],
                                iterations=pipe.iterations,
                                latent=torch.stack([fresh[1].wplus, fresh[0].wplus]))
    assert torch.allclose(again.images, plain.images, atol=1e-5)
    assert torch.allclose(again.initial, plain.initial, atol=1e-5)
    # a repeated face shares its start; its outputs differ only through the codes
    assert torch.equal(first.initial[0], first.initial[2])
