"""`hypernst download` / `weights list|verify` with the real huggingface_hub client against a stub."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hub_stub import HubStub, hub, write_registry  # noqa: F401 - `hub` is a fixture

from hypernst_cli.weights.registry import load_registry, locate, quarantine_dir, read_records

GOOD = b"hypernst test weights " * 1000
GOOD_SHA = hashlib.sha256(GOOD).hexdigest()
REPO = "someone/hypernst-test"


def _entries(stub: HubStub) -> list[dict[str, object]]:
    stub.add_file(REPO, "good.bin", GOOD)
    stub.add_file(REPO, "other.bin", b"other bytes")
    stub.add_file(REPO, "wrong.bin", b"these are not the bytes that were pinned")
    stub.add_file(REPO, "loose.bin", b"unpinned bytes")
    stub.add_file("org/gated", "secret.bin", GOOD, token="good-token")
    plain = stub.add_url("models/plain-7be5.pth", b"plain url bytes")
    bad_prefix = stub.add_url("models/bad-0000.pth", b"prefix will not match")
    html = stub.add_url("drive", b"<html>confirm</html>", content_type="text/html; charset=utf-8")
    plain_sha = hashlib.sha256(b"plain url bytes").hexdigest()
    return [
        dict(name="good", kind="generator", configs=["tiny"], repo_id=REPO, filename="good.bin",
             sha256=GOOD_SHA, size=len(GOOD), license="MIT"),
        dict(name="other", kind="generator", configs=["compact"], repo_id=REPO,
             filename="other.bin", sha256=hashlib.sha256(b"other bytes").hexdigest()),
        dict(name="wrong", kind="generator", repo_id=REPO, filename="wrong.bin", sha256=GOOD_SHA),
        dict(name="loose", kind="generator", repo_id=REPO, filename="loose.bin"),
        dict(name="absent", kind="generator", repo_id=REPO, filename="absent.bin", sha256=GOOD_SHA),
        dict(name="norepo", kind="generator", repo_id="nobody/nothing", filename="x.bin"),
        dict(name="gated", kind="generator", repo_id="org/gated", filename="secret.bin",
             sha256=GOOD_SHA),
        dict(name="plain", kind="backbone", url=plain, filename="plain-7be5.pth",
             sha256_prefix=plain_sha[:8]),
        dict(name="badprefix", kind="backbone", url=bad_prefix, filename="bad-0000.pth",
             sha256_prefix="00000000"),
        dict(name="plain404", kind="backbone", url=f"{stub.url}/files/missing.pth",
             filename="missing.pth"),
        dict(name="html", kind="generator", url=html, filename="550000.pt"),
        dict(name="manual", kind="aladin", filename="aladin.pt", homepage="https://example.org/r"),
    ]


@pytest.fixture
def registry(hub, tmp_path, monkeypatch):  # noqa: F811 - pytest fixture injection
    write_registry(tmp_path / "weights.toml", _entries(hub), monkeypatch)
    return load_registry()


def _one_line_error(r) -> str:
    lines = r.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, r.stderr
    assert "Traceback" not in r.stderr
    return errors[0]


def test_download_verifies_and_second_call_uses_cache(hub, registry, run_cli, tmp_path):  # noqa: F811
    r = run_cli("--quiet", "download", "good")
    assert r.exit_code == 0, r.stderr
    path, status = locate(registry["good"])
    assert status == "downloaded" and path is not None
    assert path.read_bytes() == GOOD
    assert str(path).startswith(str(tmp_path / "hf-home" / "hub" / "models--someone--hypernst-test"))
    assert "downloaded" in r.stdout and "good" in r.stdout
    assert hub.count("GET", "good.bin") == 1
    assert read_records()["good"]["sha256"] == GOOD_SHA

    r = run_cli("--quiet", "download", "good")
    assert r.exit_code == 0 and "cached" in r.stdout
    assert hub.count("GET", "good.bin") == 1  # no new download


def test_offline_with_warm_cache_works_and_cold_cache_fails(hub, registry, run_cli, monkeypatch):  # noqa: F811
    assert run_cli("--quiet", "download", "good", "plain").exit_code == 0
    before = len(hub.requests)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    r = run_cli("--quiet", "download", "good", "plain")
    assert r.exit_code == 0, r.stderr
    assert len(hub.requests) == before  # not a single request while offline

    for name in ("other", "loose"):  # cold cache: Hub entries
        r = run_cli("--quiet", "download", name)
        assert r.exit_code == 3
        line = _one_line_error(r)
        assert "HF_HUB_OFFLINE" in line and name in line
    r = run_cli("--quiet", "download", "plain404")  # cold cache: URL entry
    assert r.exit_code == 3 and "HF_HUB_OFFLINE" in _one_line_error(r)
    assert len(hub.requests) == before


def test_404_fails_and_leaves_nothing_usable(hub, registry, run_cli):  # noqa: F811
    for name, words in (
        ("absent", "not found upstream"),
        ("plain404", "not found upstream"),
        ("norepo", "repository not found"),
    ):
        r = run_cli("--quiet", "download", name)
        assert r.exit_code == 3, (name, r.stderr)
        assert words in _one_line_error(r)
        assert locate(registry[name]) == (None, "missing")


def test_unknown_revision_is_exit_3(hub, registry, run_cli):  # noqa: F811
    r = run_cli("--quiet", "download", "good", "--revision", "v9")
    assert r.exit_code == 3 and "revision 'v9' not found" in _one_line_error(r)


def test_hash_mismatch_is_quarantined_and_never_located(hub, registry, run_cli):  # noqa: F811
    r = run_cli("--quiet", "download", "wrong")
    assert r.exit_code == 3
    line = _one_line_error(r)
    assert "sha256 mismatch" in line and GOOD_SHA in line
    assert locate(registry["wrong"]) == (None, "missing")
    bad = list((quarantine_dir() / "wrong").iterdir())
    assert len(bad) == 1 and bad[0].read_bytes() == b"these are not the bytes that were pinned"

    # A second attempt fetches again (the cached pointer was dropped) and fails the same way.
    r = run_cli("--quiet", "download", "wrong")
    assert r.exit_code == 3 and hub.count("GET", "wrong.bin") == 2
    assert locate(registry["wrong"]) == (None, "missing")


def test_url_entry_prefix_check_and_location(hub, registry, run_cli, tmp_path):  # noqa: F811
    r = run_cli("--quiet", "download", "plain")
    assert r.exit_code == 0, r.stderr
    path, status = locate(registry["plain"])
    assert status == "downloaded" and path.read_bytes() == b"plain url bytes"
    assert str(path).startswith(str(tmp_path / "hf-home" / "hypernst-url-cache" / "plain"))
    assert "only the sha256 prefix" in r.stderr  # warned: only a prefix is pinned

    r = run_cli("--quiet", "download", "badprefix")
    assert r.exit_code == 3 and "sha256 mismatch" in _one_line_error(r)
    assert locate(registry["badprefix"]) == (None, "missing")
    assert not any(p.is_file() for p in (tmp_path / "hf-home" / "hypernst-url-cache" / "badprefix").rglob("*"))
    assert any((quarantine_dir() / "badprefix").iterdir())


def test_unpinned_download_warns_and_records_then_verify_catches_changes(hub, registry, run_cli):  # noqa: F811
    r = run_cli("--quiet", "download", "loose")
    assert r.exit_code == 0
    assert "unpinned" in r.stderr
    digest = hashlib.sha256(b"unpinned bytes").hexdigest()
    assert digest in r.stderr and read_records()["loose"]["sha256"] == digest

    assert run_cli("weights", "verify").exit_code == 0
    path, _ = locate(registry["loose"])
    real = Path(os.path.realpath(path))
    real.chmod(0o644)
    real.write_bytes(b"tampered")
    r = run_cli("weights", "verify")
    assert r.exit_code == 3
    assert "MISMATCH  loose" in r.stdout and "changed since download" in r.stdout


def test_verify_detects_a_corrupted_pinned_file(hub, registry, run_cli):  # noqa: F811
    assert run_cli("--quiet", "download", "good").exit_code == 0
    r = run_cli("weights", "verify", "--json")
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert r.exit_code == 0 and {"name": "good", "status": "ok"}.items() <= rows[0].items()
    path, _ = locate(registry["good"])
    real = Path(os.path.realpath(path))
    real.chmod(0o644)
    real.write_bytes(GOOD[:-1] + b"!")
    r = run_cli("weights", "verify")
    assert r.exit_code == 3 and "MISMATCH  good" in r.stdout
    r = run_cli("weights", "verify", "other")  # named but not downloaded: a problem too
    assert r.exit_code == 3 and "MISSING" in r.stdout


def test_gated_repository_needs_hf_token(hub, registry, run_cli, monkeypatch):  # noqa: F811
    r = run_cli("--quiet", "download", "gated")
    assert r.exit_code == 3 and "HF_TOKEN" in _one_line_error(r)
    assert locate(registry["gated"]) == (None, "missing")
    monkeypatch.setenv("HF_TOKEN", "good-token")
    r = run_cli("--quiet", "download", "gated")
    assert r.exit_code == 0, r.stderr
    assert locate(registry["gated"])[1] == "downloaded"


def test_web_page_instead_of_file_is_refused(hub, registry, run_cli):  # noqa: F811
    r = run_cli("--quiet", "download", "html")
    assert r.exit_code == 3 and "returned a web page" in _one_line_error(r)
    assert locate(registry["html"]) == (None, "missing")


def test_manual_entry_says_where_to_get_it(hub, registry, run_cli):  # noqa: F811
    r = run_cli("download", "manual")
    assert r.exit_code == 3 and "https://example.org/r" in _one_line_error(r)


def test_disk_full_is_one_line_exit_3(hub, registry, run_cli, monkeypatch, tmp_path):  # noqa: F811
    import builtins

    import huggingface_hub

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", full)
    r = run_cli("--quiet", "download", "good")
    assert r.exit_code == 3 and "disk full" in _one_line_error(r)

    real_open = builtins.open

    def open_full(file, mode="r", *args, **kwargs):
        if "incomplete" in str(file) and "w" in mode:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", open_full)
    r = run_cli("--quiet", "download", "plain")
    assert r.exit_code == 3 and "disk full" in _one_line_error(r)
    assert locate(registry["plain"]) == (None, "missing")
    leftovers = [p for p in (tmp_path / "hf-home").rglob("*") if p.is_file()]
    assert leftovers == []


def test_several_names_report_each_failure_and_exit_3(hub, registry, run_cli):  # noqa: F811
    r = run_cli("--quiet", "download", "good", "absent", "--json")
    assert r.exit_code == 3
    rows = {row["name"]: row for row in map(json.loads, r.stdout.splitlines())}
    assert rows["good"]["ok"] and rows["good"]["sha256"] == GOOD_SHA
    assert not rows["absent"]["ok"] and "not found upstream" in rows["absent"]["error"]


def test_download_by_config_and_usage_errors(hub, registry, run_cli):  # noqa: F811
    r = run_cli("--quiet", "download", "--config", "tiny")
    assert r.exit_code == 0 and "good" in r.stdout and "other" not in r.stdout
    assert run_cli("download").exit_code == 2
    assert run_cli("download", "--config", "nope").exit_code == 2
    r = run_cli("download", "godo")
    assert r.exit_code == 3 and "did you mean good" in _one_line_error(r)


def test_weights_list_shows_status_size_license_configs(hub, registry, run_cli):  # noqa: F811
    assert run_cli("--quiet", "download", "good").exit_code == 0
    r = run_cli("weights", "list", "--json")
    assert r.exit_code == 0
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    assert rows["good"]["status"] == "downloaded" and rows["good"]["size"] == len(GOOD)
    assert rows["good"]["license"] == "MIT" and rows["good"]["configs"] == ["tiny"]
    assert rows["other"]["status"] == "missing" and rows["plain"]["pinned"] == "prefix"
    r = run_cli("weights", "list", "--config", "compact")
    assert r.exit_code == 0 and "other" in r.stdout and "good" not in r.stdout


def test_a_real_process_honours_the_environment(hub, registry, tmp_path):  # noqa: F811
    """HF_* variables set before huggingface_hub is imported (the normal CLI case)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    cmd = [sys.executable, "-m", "hypernst_cli", "--quiet", "download", "other"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert str(tmp_path / "hf-home" / "hub") in done.stdout
    offline = dict(env, HF_HUB_OFFLINE="1")
    cmd[-1] = "good"
    done = subprocess.run(cmd, env=offline, capture_output=True, text=True, timeout=120)
    assert done.returncode == 3 and done.stderr.count("\n") == 1 and "HF_HUB_OFFLINE" in done.stderr
