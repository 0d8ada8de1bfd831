"""Run folders: atomic writes, content hashes, stage caching and resume (stylesurv.run)."""

import hashlib
import json

import pytest

from stylesurv.core.atomic import atomic_dir, write_json_atomic, write_text_atomic
from stylesurv.core.errors import InputError
from stylesurv.core.hashing import hash_config, hash_tree, sha256_file
from stylesurv.core.rundir import RunDir


def test_sha256_matches_hashlib(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(b"stylesurv" * 1000)
    assert sha256_file(path) == hashlib.sha256(b"stylesurv" * 1000).hexdigest()


def test_atomic_write_failure_keeps_old_content(tmp_path):
    path = tmp_path / "out.txt"
    write_text_atomic(path, "old")
    with pytest.raises(TypeError):
        write_json_atomic(path, {"x": object()})  # not serialisable: fails before the rename
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]  # no temporary left behind


def test_atomic_dir_replaces_only_on_success(tmp_path):
    target = tmp_path / "stage"
    with atomic_dir(target) as tmp:
        (tmp / "f.txt").write_text("1")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "f.txt").write_text("2")
        raise RuntimeError("killed")
    assert (target / "f.txt").read_text() == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stage"]


def test_hash_tree_depends_on_names_and_contents_not_hidden_files(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    first = hash_tree(tmp_path)
    (tmp_path / ".marker").write_text("ignored")
    assert hash_tree(tmp_path) == first
    (tmp_path / "a.txt").write_text("y")
    assert hash_tree(tmp_path) != first
    assert hash_config({"a": 1, "b": [1, 2]}) == hash_config({"b": [1, 2], "a": 1})


def test_stage_is_skipped_when_inputs_and_config_unchanged(tmp_path):
    source = tmp_path / "input.txt"
    source.write_text("data")
    run = RunDir(tmp_path / "run")
    calls = []

    def build(out):
        calls.append(out)
        (out / "result.txt").write_text(source.read_text().upper())

    first = run.run_stage("upper", {"k": 1}, {"src": source}, build)
    second = run.run_stage("upper", {"k": 1}, {"src": source}, build)
    assert not first.cached and second.cached and len(calls) == 1
    run.run_stage("upper", {"k": 2}, {"src": source}, build)  # new config: rebuilt
    source.write_text("other")
    run.run_stage("upper", {"k": 2}, {"src": source}, build)  # new input: rebuilt
    assert len(calls) == 3
    assert (run.stage_path("upper") / "result.txt").read_text() == "OTHER"
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["stages"]["upper"]["config"] == {"k": 2}
    assert "torch" in manifest["versions"] and "python" in manifest["versions"]


def test_interrupted_stage_resumes_with_same_key_and_restarts_with_another(tmp_path):
    run = RunDir(tmp_path / "run")
    done = []

    def build_killed(out):
        (out / "part1").write_text("1")
        raise KeyboardInterrupt

    def build_resuming(out):
        done.append((out / "part1").exists())
        (out / "part2").write_text("2")

    with pytest.raises(KeyboardInterrupt):
        run.run_stage("s", {"k": 1}, {}, build_killed)
    assert run.stage_key("s") is None  # never marked done
    run.run_stage("s", {"k": 1}, {}, build_resuming)
    assert done == [True]  # same key: the partial work was handed back
    finished = (run.stage_path("s") / "part2").stat().st_ino
    with pytest.raises(KeyboardInterrupt):
        run.run_stage("s", {"k": 9}, {}, build_killed)
    # the failed rerun under another key left the finished stage as it was, and still finished
    assert run.stage_key("s") and (run.stage_path("s") / "part2").stat().st_ino == finished
    assert not (run.stage_path("s") / "part1").exists() or done == [True]
    assert run.run_stage("s", {"k": 1}, {}, build_resuming).cached
    with pytest.raises(KeyboardInterrupt):
        run.run_stage("s", {"k": 1.5}, {}, build_killed)
    run.run_stage("s", {"k": 9}, {}, build_resuming)
    assert done == [True, False]  # the work folder was started under another key: emptied first


def test_a_stage_is_replaced_only_by_a_finished_one_even_when_killed_mid_swap(tmp_path, monkeypatch):
    import os

    run = RunDir(tmp_path / "run")
    run.run_stage("s", {"k": 1}, {}, lambda out: (out / "v.txt").write_text("one"))
    real_replace, calls = os.replace, []

    def dies_after_moving_the_old_one_away(src, dst):
        real_replace(src, dst)
        if "trash" in str(dst) and not calls:
            calls.append(dst)
            raise KeyboardInterrupt  # killed between the two renames of the swap

    monkeypatch.setattr(os, "replace", dies_after_moving_the_old_one_away)
    with pytest.raises(KeyboardInterrupt):
        run.run_stage("s", {"k": 2}, {}, lambda out: (out / "v.txt").write_text("two"))
    monkeypatch.setattr(os, "replace", real_replace)
    # the new output was complete before the swap began, so a reader finishes the swap
    reopened = RunDir(tmp_path / "run")
    assert (reopened.stage_path("s") / "v.txt").read_text() == "two"
    assert reopened.run_stage("s", {"k": 2}, {}, lambda out: pytest.fail("rebuilt")).cached
    manifest = reopened.read_manifest()
    assert manifest["stages"]["s"]["config"] == {"k": 2}


def test_a_changed_stage_output_is_redone_with_a_warning(tmp_path, capsys):
    run = RunDir(tmp_path / "run")
    calls = []

    def build(out):
        calls.append(1)
        (out / "latents.npz").write_bytes(b"x" * 1000)

    run.run_stage("embed", {}, {}, build)
    (run.stage_path("embed") / "latents.npz").write_bytes(b"x" * 10)  # truncated
    again = run.run_stage("embed", {}, {}, build)
    assert not again.cached and len(calls) == 2
    assert "changed since it was made" in capsys.readouterr().err
    assert (run.stage_path("embed") / "latents.npz").stat().st_size == 1000


def test_a_missing_input_is_named_not_taken_for_an_unfinished_stage(tmp_path):
    run = RunDir(tmp_path / "run")
    with pytest.raises(InputError, match=r"fit: its input latents .*absent.npz is missing"):
        run.run_stage("fit", {}, {"latents": tmp_path / "absent.npz"}, lambda out: None)


def test_a_cached_stage_keeps_the_time_it_took_in_the_manifest(tmp_path):
    import time

    run = RunDir(tmp_path / "run")
    run.run_stage("slow", {}, {}, lambda out: time.sleep(0.05))
    first = run.read_manifest()["stages"]["slow"]["seconds"]
    assert run.run_stage("slow", {}, {}, lambda out: None).cached
    assert first >= 0.05 and run.read_manifest()["stages"]["slow"]["seconds"] == first


def test_a_truncated_manifest_is_named_and_rebuilt_from_the_stage_records(tmp_path):
    run = RunDir(tmp_path / "run")
    run.run_stage("s", {"k": 1}, {}, lambda out: None)
    (run.root / "manifest.json").write_text('{"stages": {"s"')
    with pytest.raises(InputError, match="manifest.json is unreadable"):
        run.read_manifest()
    run.update_manifest(note=1)
    assert run.read_manifest()["stages"]["s"]["config"] == {"k": 1}


def test_a_second_process_is_refused_while_the_run_folder_is_locked(tmp_path):
    import subprocess
    import sys

    run = RunDir(tmp_path / "run")
    code = (
        "import sys\nfrom stylesurv.core.rundir import RunDir\nfrom stylesurv.core.errors import InputError\n"
        "try:\n    RunDir(sys.argv[1]).locked().__enter__()\n"
        "except InputError as e:\n    print(e); sys.exit(1)\n"
    )
    with run.locked():
        other = subprocess.run([sys.executable, "-c", code, str(run.root)], capture_output=True, text=True)
    assert other.returncode == 1
    assert (
        f"run folder {run.root}" in other.stdout
        and f"in use by PID {__import__('os').getpid()}" in other.stdout
    )
    # a dead holder's lock is released by the kernel: the next process takes it
    assert subprocess.run([sys.executable, "-c", code, str(run.root)]).returncode == 0


def test_atomic_outputs_get_ordinary_permissions(tmp_path):
    import os

    umask = os.umask(0o022)
    os.umask(umask)
    write_text_atomic(tmp_path / "f.txt", "x")
    with atomic_dir(tmp_path / "d") as tmp:
        (tmp / "g.txt").write_text("y")
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o666 & ~umask
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o777 & ~umask


def test_safetensors_are_canonical_and_round_trip(tmp_path):
    import numpy as np
    import torch
    from safetensors import safe_open
    from safetensors.numpy import load_file as load_numpy

    from stylesurv.core.atomic import write_safetensors_atomic

    tensors = {"b": torch.arange(6.0).reshape(2, 3), "a": torch.ones(3, dtype=torch.int64)}
    meta = {f"key{i}": str(i) for i in range(20)}  # many keys: hash-map order would vary between processes
    write_safetensors_atomic(tmp_path / "t.safetensors", tensors, meta)
    with safe_open(tmp_path / "t.safetensors", "pt") as f:
        assert f.metadata() == meta
        assert torch.equal(f.get_tensor("b"), tensors["b"]) and torch.equal(f.get_tensor("a"), tensors["a"])
    data = (tmp_path / "t.safetensors").read_bytes()
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    assert size % 8 == 0 and list(header) == sorted(header)
    assert list(header["__metadata__"]) == sorted(meta)
    write_safetensors_atomic(tmp_path / "n.safetensors", {"x": np.eye(2, dtype=np.float32)})
    np.testing.assert_array_equal(load_numpy(tmp_path / "n.safetensors")["x"], np.eye(2))


def test_atomic_writes_work_for_names_near_the_file_name_limit(tmp_path):
    long_name = "p" * 240 + ".png"  # 244 bytes: the temporary name beside it must still fit in 255
    write_text_atomic(tmp_path / long_name, "x")
    assert (tmp_path / long_name).read_text() == "x"
    with atomic_dir(tmp_path / ("d" * 250)) as tmp:
        (tmp / "f").write_text("y")
    with atomic_dir(tmp_path / ("d" * 250)) as tmp:  # replacing an existing folder of that name
        (tmp / "f").write_text("z")
    assert (tmp_path / ("d" * 250) / "f").read_text() == "z"


def test_a_cut_short_swap_marker_means_the_stage_is_computed_again(tmp_path, capsys):
    run = RunDir(tmp_path / "run")
    run.run_stage("s", {"k": 1}, {}, lambda out: (out / "v").write_text("one"))
    (run.root / ".stages" / "s.swap.json").write_text('{"key": ')  # killed while writing the marker
    reopened = RunDir(tmp_path / "run")
    assert "unreadable; the stage s will be computed again" in capsys.readouterr().err
    assert (reopened.stage_path("s") / "v").read_text() == "one"  # the finished stage is still in place
    assert reopened.run_stage("s", {"k": 1}, {}, lambda out: None).cached
