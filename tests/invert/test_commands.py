"""`stylesurv embed` and `stylesurv encoder train` on the command line: help and clear errors."""

from stylesurv.app.cli import main


def test_help_shows_examples(capsys) -> None:
    assert main(["embed", "--help"]) == 0
    assert "Example: stylesurv embed" in capsys.readouterr().out
    assert main(["encoder", "train", "--help"]) == 0
    assert "Example: stylesurv encoder train" in capsys.readouterr().out


def test_bad_arguments_exit_1_with_a_message(tmp_path, capsys) -> None:
    ckpt = tmp_path / "g.safetensors"
    assert main(["embed", str(tmp_path), "--generator", str(ckpt), "--out", "x.npz", "--space", "z"]) == 1
    assert "--space must be one of w, wplus" in capsys.readouterr().err
    assert main(["embed", str(tmp_path), "--generator", str(ckpt), "--out", "x.npz", "--vgg16", "a.pth"]) == 1
    assert "both --vgg16 and --lpips" in capsys.readouterr().err
    assert main(["embed", str(tmp_path), "--generator", str(ckpt), "--out", str(tmp_path / "x.npz")]) == 1
    assert "generator checkpoint not found" in capsys.readouterr().err
    assert main(["encoder", "train", "--generator", str(ckpt), "--out", str(tmp_path / "e")]) == 1
    assert "generator checkpoint not found" in capsys.readouterr().err


def test_train_encoder_then_embed_from_checkpoints(tmp_path) -> None:
    from stylesurv.core.hashing import sha256_file
    from stylesurv.core.latents import load_latents
    from stylesurv.gan.checkpoint import save_networks
    from tests.invert.tiny import make_aligned, tiny_discriminator, tiny_generator

    ckpt = tmp_path / "g.safetensors"
    save_networks(ckpt, D=tiny_discriminator(), G_ema=tiny_generator())
    aligned = make_aligned(tmp_path / "aligned", n=3)
    assert main(["-q", "encoder", "train", "--generator", str(ckpt), "--out", str(tmp_path / "enc"),
                 "--steps", "2", "--batch", "2"]) == 0  # fmt: skip
    out = tmp_path / "embed" / "latents.npz"
    code = main([
        "-q", "embed", str(aligned), "--generator", str(ckpt), "--encoder", str(tmp_path / "enc"),
        "--space", "w", "--steps", "2", "--batch", "2", "--discriminator", str(ckpt), "--disc-weight", "0.5",
        "--save-reconstructions", str(tmp_path / "rec"), "--out", str(out),
    ])  # fmt: skip
    assert code == 0
    latents = load_latents(out)
    assert latents.patient_id.tolist() == ["P000", "P001", "P002"]
    assert latents.meta["generator_sha256"] == sha256_file(ckpt)
    assert latents.meta["encoder_sha256"] == sha256_file(tmp_path / "enc" / "encoder.safetensors")
    assert latents.meta["config"]["losses"]["disc"] == 0.5 and latents.space == "w"
    assert len(list((tmp_path / "rec").glob("*.png"))) == 3
