"""The batch runner: skip finished work, report-and-skip bad items, exit codes, shards."""

from __future__ import annotations

import json

import pytest

from hypernst_cli.cli.batch import Done, WorkItem, parse_shard, run_batch, take_shard
from hypernst_cli.cli.state import STATE
from hypernst_cli.errors import ImageReadError, UsageError, WeightsNotFoundError
from hypernst_cli.io import atomic_write_text


def _items(tmp_path, names):
    return [WorkItem(n, {"input": n}, [tmp_path / f"{n}.txt"]) for n in names]


def _worker(calls):
    def work(item):
        calls.append(item.label)
        if item.label.startswith("bad"):
            raise ImageReadError(item.label, "not a readable image file")
        atomic_write_text(item.outputs[0], item.label)
        return {"model": 0.01}

    return work


@pytest.fixture(autouse=True)
def _quiet():
    old = STATE.quiet
    STATE.quiet = True
    yield
    STATE.quiet = old


def test_all_ok_then_resume_skips(tmp_path):
    calls: list[str] = []
    s = run_batch(_items(tmp_path, ["a", "b"]), _worker(calls))
    assert s.exit_code == 0 and s.count("ok") == 2 and calls == ["a", "b"]
    s = run_batch(_items(tmp_path, ["a", "b", "c"]), _worker(calls))
    assert calls == ["a", "b", "c"] and s.count("skipped") == 2
    s = run_batch(_items(tmp_path, ["a"]), _worker(calls), overwrite=True)
    assert calls[-1] == "a" and s.count("ok") == 1


def test_a_single_skipped_item_says_so(tmp_path, capsys):
    run_batch(_items(tmp_path, ["a"]), _worker([]))
    STATE.quiet = False
    calls: list[str] = []
    s = run_batch(_items(tmp_path, ["a"]), _worker(calls))
    assert calls == [] and s.exit_code == 0
    err = capsys.readouterr().err
    assert "skipped" in err and "a.txt already exists" in err and "--overwrite" in err
    run_batch(_items(tmp_path, ["a"]), _worker(calls), overwrite=True)
    assert calls == ["a"] and "skipped" not in capsys.readouterr().err


def test_bad_items_are_reported_and_skipped(tmp_path, capsys):
    calls: list[str] = []
    s = run_batch(_items(tmp_path, ["a", "bad1", "b"]), _worker(calls), as_json=True)
    assert s.exit_code == 1
    assert (tmp_path / "a.txt").exists() and (tmp_path / "b.txt").exists()
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x.get("status") for x in lines[:3]] == ["ok", "failed", "ok"]
    assert "not a readable image" in lines[1]["error"]
    assert lines[-1]["summary"]["failed"] == 1 and lines[-1]["summary"]["ok"] == 2


def test_everything_failed_is_exit_2_and_single_item_reraises(tmp_path):
    s = run_batch(_items(tmp_path, ["bad1", "bad2"]), _worker([]))
    assert s.exit_code == 2
    with pytest.raises(ImageReadError):
        run_batch(_items(tmp_path, ["bad1"]), _worker([]))


def test_fatal_errors_stop_the_batch(tmp_path):
    calls: list[str] = []

    def work(item):
        calls.append(item.label)
        raise WeightsNotFoundError("no weights")

    with pytest.raises(WeightsNotFoundError):
        run_batch(_items(tmp_path, ["a", "b", "c"]), work)
    assert calls == ["a"]


def test_a_refused_write_stops_the_batch_after_its_summary(tmp_path, capsys):
    """A worker's raw OSError (disk full) stops the batch like a WriteError: the items done are
    kept and counted, the summary line is printed, then the error is raised (exit 74)."""
    import errno

    from hypernst_cli.errors import WriteError

    calls: list[str] = []

    def work(item):
        calls.append(item.label)
        if item.label == "b":
            raise OSError(errno.ENOSPC, "No space left on device", str(item.outputs[0]))
        atomic_write_text(item.outputs[0], item.label)

    with pytest.raises(WriteError) as exc:
        run_batch(_items(tmp_path, ["a", "b", "c"]), work, as_json=True)
    assert calls == ["a", "b"] and exc.value.exit_code == 74
    assert str(tmp_path / "b.txt") in exc.value.one_line()
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    summary = lines[-1]["summary"]
    assert (summary["ok"], summary["failed"], summary["not_run"], summary["total"]) == (1, 1, 1, 3)
    assert summary["stopped"] == exc.value.one_line()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
    # a lone item: just its error, as for any other error (not a "failed" line before it too)
    STATE.quiet = False
    with pytest.raises(WriteError):
        run_batch(_items(tmp_path, ["b"]), work)
    out = capsys.readouterr()
    assert out.out == "" and "failed" not in out.err


def test_leftover_temp_files_are_swept(tmp_path):
    leftover = tmp_path / ".a.tmp-xyz.txt"
    leftover.write_text("half")
    run_batch(_items(tmp_path, ["a"]), _worker([]))
    assert not leftover.exists()


def test_shards_are_disjoint_and_complete(tmp_path, monkeypatch):
    items = _items(tmp_path, [str(i) for i in range(10)])
    parts = [take_shard(items, (k, 3)) for k in (1, 2, 3)]
    labels = [it.label for p in parts for it in p]
    assert sorted(labels) == sorted(it.label for it in items) and len(set(labels)) == 10
    assert parse_shard("2/3") == (2, 3)
    for bad in ("0/3", "4/3", "x", "1/0"):
        with pytest.raises(UsageError):
            parse_shard(bad)
    for var in ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "RANK", "WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    assert parse_shard(None) is None
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert parse_shard(None) == (2, 4)
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "4")
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "0")
    assert parse_shard(None) == (4, 4)


def _faces_worker(calls):
    """A worker whose items make a variable number of products (like one crop per face)."""

    def work(item):
        calls.append(item.label)
        n = int(item.label[-1])
        paths = [item.outputs[0].with_name(f"{item.label}_{i}.txt") for i in range(n)]
        for p in reversed(paths):  # the promised first output is written last
            atomic_write_text(p, "x")
        return Done(outputs=paths, records=[{"face": i, "output": str(p)} for i, p in enumerate(paths)])

    return work


def test_items_with_several_products_print_a_line_each_and_resume(tmp_path, capsys):
    items = [WorkItem(n, {"input": n}, [tmp_path / f"{n}_0.txt"]) for n in ("p2", "q1")]
    calls: list[str] = []
    s = run_batch(items, _faces_worker(calls), as_json=True)
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [(x["input"], x["face"], x["ok"], x["skipped"]) for x in lines[:-1]] == [
        ("p2", 0, True, False), ("p2", 1, True, False), ("q1", 0, True, False)]
    assert lines[-1]["summary"]["ok"] == 2
    assert [p.name for p in s.results[0].outputs] == ["p2_0.txt", "p2_1.txt"]

    def resume(item):
        found = sorted(tmp_path.glob(f"{item.label}_*.txt"))
        return Done(outputs=found, records=[{"face": i, "output": str(p)} for i, p in enumerate(found)])

    s = run_batch(items, _faces_worker(calls), list_outputs=True, resume=resume)
    assert calls == ["p2", "q1"] and s.count("skipped") == 2
    out = capsys.readouterr().out.splitlines()
    assert out == [f"skipped {tmp_path / name}  ({label})"
                   for name, label in (("p2_0.txt", "p2"), ("p2_1.txt", "p2"), ("q1_0.txt", "q1"))]
    assert [p.name for r in s.done() for p in r.files()] == ["p2_0.txt", "p2_1.txt", "q1_0.txt"]


def test_listing_outputs_names_each_file_and_failure_on_stdout(tmp_path, capsys):
    s = run_batch(_items(tmp_path, ["a", "bad1"]), _worker([]), list_outputs=True)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"wrote   {tmp_path / 'a.txt'}  (a)"
    assert out[1].startswith("FAILED bad1: not a readable image")
    assert [r.item.label for r in s.done()] == ["a"]


def test_two_items_with_the_same_output_are_refused_before_anything_runs(tmp_path):
    """The second would be skipped as done (or overwrite the first) and its result lost with
    exit 0: `invert a/face.png b/face.png` once wrote one latent and counted the other skipped."""
    calls: list[str] = []
    items = [WorkItem("a/face.png", {}, [tmp_path / "face.txt"]),
             WorkItem("b/face.png", {}, [tmp_path / "x" / ".." / "face.txt"])]
    with pytest.raises(UsageError, match="a/face.png and b/face.png would both be written"):
        run_batch(items, _worker(calls))
    assert calls == [] and not (tmp_path / "face.txt").exists()


def test_a_failed_item_lists_no_outputs(tmp_path, capsys):
    """Its promised files were never written: --json must not list them."""
    run_batch(_items(tmp_path, ["a", "bad1"]), _worker([]), as_json=True)
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert lines[0]["outputs"] == [str(tmp_path / "a.txt")] and lines[1]["outputs"] == []


def test_quiet_prints_nothing_but_errors(tmp_path, capsys):
    """-q (the autouse fixture): no summary table, each failure once on stderr, with or without
    the listing on stdout; --json lines only; a write that stops the batch: only its raised error."""
    import errno

    from hypernst_cli.errors import WriteError

    for list_outputs in (False, True):
        s = run_batch(_items(tmp_path, ["a", "bad1", "b"]), _worker([]), overwrite=True,
                      list_outputs=list_outputs)
        assert s.exit_code == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "bad1: not a readable image" in err[0], err
    run_batch(_items(tmp_path, ["a", "bad1"]), _worker([]), overwrite=True, as_json=True)
    assert capsys.readouterr().err == ""

    def full(item):
        raise OSError(errno.ENOSPC, "No space left on device", str(item.outputs[0]))

    with pytest.raises(WriteError):
        run_batch(_items(tmp_path, ["c", "d"]), full)
    assert capsys.readouterr().err == ""  # (its one line is the raised error's, printed by main)


def test_an_item_with_a_manifest_is_done_only_when_everything_it_lists_exists(tmp_path, capsys):
    """An item making one file per face: a run stopped between its files, a file removed since,
    or a stopped --overwrite leaves it to redo; a finished one is skipped listing every file."""
    calls: list[str] = []
    stop_after: list[int] = []  # write this many files, then stop as a kill would

    def work(item):
        calls.append(item.label)
        paths = [tmp_path / f"{item.label}_{i}.txt" for i in range(3)]
        for i, p in enumerate(paths):
            if stop_after and i == stop_after[0]:
                raise KeyboardInterrupt
            atomic_write_text(p, "x")
        return Done(outputs=paths)

    def run(**kw):
        items = [WorkItem("p", {"input": "p"}, [tmp_path / "p_0.txt"], manifest=tmp_path / ".p.json")]
        return run_batch(items, work, as_json=True, **kw)

    stop_after[:] = [2]
    with pytest.raises(KeyboardInterrupt):
        run()
    stop_after.clear()
    capsys.readouterr()
    assert run().count("ok") == 1 and calls == ["p", "p"]
    s = run()
    assert s.count("skipped") == 1 and calls == ["p", "p"]
    listed = [json.loads(x) for x in capsys.readouterr().out.splitlines()][-2]["outputs"]
    assert listed == [str(tmp_path / f"p_{i}.txt") for i in range(3)]
    (tmp_path / "p_2.txt").unlink()
    assert run().count("ok") == 1 and calls == ["p"] * 3
    stop_after[:] = [1]
    with pytest.raises(KeyboardInterrupt):
        run(overwrite=True)
    stop_after.clear()
    assert run().count("ok") == 1 and calls == ["p"] * 5
