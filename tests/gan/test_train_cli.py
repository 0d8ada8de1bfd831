"""`stylesurv gan train` and `gan export-asset` through the real CLI, on tiny networks."""

import csv
import json
from pathlib import Path

from stylesurv.app.cli import main
from stylesurv.gan.train import list_snapshots, train
from tests.gan.test_train import options, tiny_factory, write_images


def _aligned_folder(folder: Path) -> Path:
    """An aligned folder: 8 images, qc.csv with one patient not ok (that image must not be used)."""
    write_images(folder, n=8)
    for path in folder.glob("p*.png"):
        path.rename(folder / path.name.replace("p", "PT", 1))
    with (folder / "qc.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["patient_id", "status", "reason"])
        for i in range(8):
            writer.writerow([f"PT{i:03d}", "ok" if i else "no_face", ""])
    return folder


def test_export_then_fine_tune_with_freeze_d_from_the_cli(tmp_path: Path) -> None:
    base = train(options(write_images(tmp_path / "population"), tmp_path / "base", kimg=0.008), tiny_factory)
    asset = tmp_path / "assets" / "base_generator"
    assert (
        main(
            [
                "gan",
                "export-asset",
                str(base.snapshot),
                "--out",
                str(asset),
                "--grid",
                str(tmp_path / "g.png"),
            ]
        )
        == 0
    )
    card = json.loads(asset.with_suffix(".json").read_text())
    assert card["weights"] == "base_generator.safetensors" and card["kimg"] == 0.008
    aligned = _aligned_folder(tmp_path / "aligned")
    code = main(
        [
            "gan",
            "train",
            "--data",
            str(aligned),
            "--out",
            str(tmp_path / "ft"),
            "--resume",
            str(asset.with_suffix(".safetensors")),
            "--kimg",
            "0.008",
            "--batch",
            "4",
            "--freeze-d",
            "4",
            "--aug",
            "ada",
            "--tick-kimg",
            "0.004",
        ]
    )
    assert code == 0
    saved = json.loads((tmp_path / "ft" / "options.json").read_text())
    assert saved["images"] == 7  # the no_face patient is left out
    assert saved["options"]["freeze_d"] == 4 and saved["ada_kimg"] == 100.0
    assert [p.name for p in list_snapshots(tmp_path / "ft")] == ["snapshot-000000008.safetensors"]
    assert len((tmp_path / "ft" / "stats.jsonl").read_text().splitlines()) == 2


def test_bad_input_exits_with_code_one(tmp_path: Path) -> None:
    data = write_images(tmp_path / "data", n=2)
    assert main(["gan", "train", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 1
    assert main(["gan", "train", "--data", str(data), "--out", str(tmp_path / "o"), "--aug", "maybe"]) == 1
    assert main(["gan", "train", "--data", str(data), "--out", str(tmp_path / "o"), "--cfg", "paper256"]) == 1
    assert main(["gan", "train", "--data", str(data), "--out", str(tmp_path / "o"), "--resume", "x.pkl"]) == 1
    (tmp_path / "broken.safetensors").write_bytes(b"garbage")
    assert (
        main(["gan", "export-asset", str(tmp_path / "broken.safetensors"), "--out", str(tmp_path / "a")]) == 1
    )


def test_rerunning_a_fine_tune_command_continues_it(tmp_path: Path) -> None:
    base = train(options(write_images(tmp_path / "population"), tmp_path / "base", kimg=0.004), tiny_factory)
    data = write_images(tmp_path / "cohort", n=6, seed=1)
    command = [
        "gan",
        "train",
        "--data",
        str(data),
        "--out",
        str(tmp_path / "ft"),
        "--resume",
        str(base.snapshot),
        "--weights-only",
        "--batch",
        "4",
        "--tick-kimg",
        "0.004",
    ]
    assert main([*command, "--kimg", "0.004"]) == 0
    assert main([*command, "--kimg", "0.008"]) == 0  # same command, longer: continues the fine-tune
    assert [p.name for p in list_snapshots(tmp_path / "ft")][-1] == "snapshot-000000008.safetensors"
    assert json.loads((tmp_path / "ft" / "options.json").read_text())["ada_kimg"] == 100.0
    other = [
        "gan",
        "train",
        "--data",
        str(data),
        "--out",
        str(tmp_path / "ft"),
        "--resume",
        str(data / "p000.png"),
    ]
    assert main(other) == 1
