"""Edits whose detail follows the face: the landmark warp (faces/warp.py), core.warp, edit_latent
with a flow, and on the embedded model a pose and a smile edit that the detector can measure."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hypernst_cli.faces.warp import border_points, landmark_flow
from hypernst_cli.pipeline.core import Latent, edit_latent, warp


def test_landmark_flow_is_zero_when_nothing_moved_and_pinned_at_the_border():
    rng = np.random.default_rng(0)
    points = rng.uniform(20, 44, size=(68, 2))
    assert not landmark_flow(points, points, 64).any()
    moved = points + np.array([3.0, -2.0])  # the face shifts right and up
    flow = landmark_flow(points, moved, 64)
    assert flow.shape == (64, 64, 2) and flow.dtype == np.float32
    # where a moved landmark is, the map points back to where it came from
    at = np.round(moved).astype(int)
    np.testing.assert_allclose(flow[at[:, 1], at[:, 0]].mean(0), [-3.0, 2.0], atol=0.3)
    border = border_points(64).astype(int)
    assert np.abs(flow[border[:, 1], border[:, 0]]).max() < 0.5
    with pytest.raises(ValueError, match="point arrays"):
        landmark_flow(points, points[:10], 64)


def test_warp_resamples_by_the_map_at_any_resolution():
    maps = torch.randn(2, 5, 16, 16)
    zero = torch.zeros(1, 2, 32, 32)
    torch.testing.assert_close(warp(maps, zero), maps)
    # 4 px to the right at 32 px is 2 px at 16 px: output(x) = input(x + 2)
    shift = torch.zeros(1, 2, 32, 32)
    shift[:, 0] = 4.0
    moved = warp(maps, shift)
    torch.testing.assert_close(moved[..., :-2], maps[..., 2:])
    torch.testing.assert_close(moved[..., -2:], maps[..., -1:].expand(-1, -1, -1, 2))  # border


def test_edit_latent_moves_the_residual_with_the_flow():
    from test_spatial import latents, networks, spatial_config

    gen = networks(spatial_config(32))["generator"]
    w = latents(gen, batch=1)
    direction = torch.randn(gen.style_dim, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        own = gen.spatial_features(w)
        residual = torch.randn_like(own) * 0.2
        latent = Latent(w, own + residual)
        still = edit_latent(gen, latent, direction, 1.5)
        # no motion: the same as the plain feature-difference edit
        same = edit_latent(gen, latent, direction, 1.5, torch.zeros(1, 2, gen.size, gen.size))
        torch.testing.assert_close(same.features, still.features)
        shift = torch.zeros(1, 2, gen.size, gen.size)
        shift[:, 1] = gen.size / own.shape[-1]  # one F pixel down
        moved = edit_latent(gen, latent, direction, 1.5, shift)
        expected = gen.spatial_features(still.wplus) + warp(residual, shift)
        torch.testing.assert_close(moved.features, expected)
        torch.testing.assert_close(moved.features[..., :-1, :] - expected[..., :-1, :],
                                   torch.zeros_like(expected[..., :-1, :]))
        assert (moved.features - still.features).abs().max() > 1e-2


@pytest.fixture(scope="module")
def embedded(portraits):
    from hypernst_cli.pipeline.directions import resolve_direction
    from hypernst_cli.pipeline.stylize import HyperNSTPipeline

    pipe = HyperNSTPipeline.load(weights=None, config="compact", device="cpu", backend="dlib",
                                 seed=0)
    face = pipe.prepare(portraits / "faces" / "astronaut.png")[0]
    base = pipe.generate([face], face.own_codes.table)
    return pipe, face, base, {d: resolve_direction(d, pipe.models)[1] for d in ("pose", "smile")}


def _measures(embedded, direction: str, strengths, follow: bool) -> list[dict]:
    from hypernst_cli.eval.landmarks import measure_image
    from hypernst_cli.io.tensors import to_uint8

    pipe, face, base, vectors = embedded
    found = [measure_image(to_uint8(pipe.render_edit(face, vectors[direction], a, base,
                                                     follow=follow))[0], box="detect")
             for a in strengths]
    assert all(m is not None for m in found), "dlib found no face on an edited render"
    return found


def test_pose_and_smile_edits_of_the_embedded_model_move_the_landmarks(embedded):
    """On a real photo (the astronaut), the edited renders stay detectable and the detector's
    landmarks turn the head with pose and widen the mouth with smile, monotonically; with the
    detail held in place (--no-follow) the head hardly turns."""
    pipe, face, base, vectors = embedded
    torch.testing.assert_close(pipe.render_edit(face, vectors["pose"], 0.0, base), base.images)
    yaw = [m["yaw"] for m in _measures(embedded, "pose", (-2.0, 0.0, 2.0), follow=True)]
    assert yaw[0] < yaw[1] < yaw[2] and yaw[2] - yaw[0] > 0.15, yaw
    held = [m["yaw"] for m in _measures(embedded, "pose", (-2.0, 2.0), follow=False)]
    assert abs(held[1] - held[0]) < (yaw[2] - yaw[0]) / 3, (held, yaw)
    smile = [m["smile"] for m in _measures(embedded, "smile", (-2.0, 0.0, 2.0), follow=True)]
    assert smile[0] < smile[1] < smile[2] and smile[2] - smile[0] > 0.2, smile
