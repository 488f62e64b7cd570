from hypernst_cli.faces.dlib_models import DLIB_MODELS, dlib_model_path


def test_bundled_dlib_models_are_found():
    for name in DLIB_MODELS:
        p = dlib_model_path(name)
        assert p.is_file() and p.stat().st_size > 50_000
