from __future__ import annotations

import json

import pytest

from hypernst_cli.configs import ModelConfig, config_names, get_config
from hypernst_cli.errors import UsageError


def test_registry_has_the_named_configs():
    assert {"tiny", "compact", "paper"} <= set(config_names())
    assert get_config("paper").resolution == 256
    assert get_config("compact").resolution >= 128


def test_config_json_roundtrip():
    for name in config_names():
        cfg = get_config(name)
        again = ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
        assert again == cfg


def test_unknown_names_and_keys_are_rejected():
    with pytest.raises(UsageError, match="unknown model config"):
        get_config("huge")
    data = get_config("tiny").to_dict()
    data["generator"]["resolutoin"] = 64
    with pytest.raises(UsageError, match="resolutoin"):
        ModelConfig.from_dict(data)
