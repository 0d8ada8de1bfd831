"""The run's TOML config: a full round trip, the README's example, presets and named errors."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from stylesurv.app.config import (
    FINETUNE_DEFAULTS,
    FIT_DEFAULTS,
    RunConfig,
    config_from_dict,
    load_config,
    to_toml,
)
from stylesurv.core.errors import InputError
from stylesurv.explain.config import ExplainConfig
from stylesurv.faces.folder import AlignConfig
from stylesurv.invert.embed import EmbedConfig
from stylesurv.invert.project import ProjectConfig

README = Path(__file__).resolve().parents[2] / "README.md"


def _changed_everywhere() -> RunConfig:
    """A config that differs from the defaults in every section, nested sections and tuples included."""
    return RunConfig(
        cohort='cohort dir/with "quotes"',
        generator="ffhq.pkl",
        encoder="enc",
        encoder_steps=0,
        landmarks="lm.csv",
        out="runs/x",
        seed=7,
        align=AlignConfig(resolution=256, cnn=True),
        finetune=dataclasses.replace(FINETUNE_DEFAULTS, kimg=12.5, batch=4),
        embed=EmbedConfig(project=ProjectConfig(space="w", steps=3, lr=0.05), batch=6),
        fit=dataclasses.replace(FIT_DEFAULTS, models=("coxnet", "clinical"), clinical=("age",), folds=3),
        explain=ExplainConfig(attribution_patients=9, remove_nuisance="photo"),
    )


def test_to_toml_and_back_gives_the_same_config(tmp_path):
    config = _changed_everywhere()
    path = tmp_path / "run.toml"
    path.write_text(to_toml(config))
    assert load_config(path) == config
    assert load_config(path).to_dict() == config.to_dict()


def test_default_config_round_trips_and_sections_start_from_the_run_presets(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(to_toml(RunConfig()))
    assert load_config(path) == RunConfig()
    # a section that lists one key keeps the run's preset for the rest, not the stage command's defaults
    config = config_from_dict({"finetune": {"kimg": 3.0}, "fit": {"folds": 4}})
    assert config.finetune == dataclasses.replace(FINETUNE_DEFAULTS, kimg=3.0)
    assert config.finetune.freeze_d == 4 and config.fit.space == "styles"
    assert config.fit == dataclasses.replace(FIT_DEFAULTS, folds=4)
    # an integer for a float field is the same setting (and the same stage key) as the float
    as_int = config_from_dict({"finetune": {"kimg": 3}})
    assert as_int.to_dict()["finetune"] == config.to_dict()["finetune"] and isinstance(
        as_int.finetune.kimg, float
    )


def test_the_readme_example_is_a_valid_config(tmp_path):
    block = re.search(r"```toml\n(.*?)```", README.read_text(), re.S)
    assert block, "README.md has no TOML example"
    path = tmp_path / "study.toml"
    path.write_text(block.group(1))
    config = load_config(path)
    assert config.fit.clinical == ("age", "stage") and config.embed.project.steps == 100


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[fit]\nmodel = ['coxnet']\n", r"model"),  # unknown key, named
        ("[embed.project]\nstep = 5\n", r"step"),
        ("[nonsense]\nx = 1\n", r"nonsense"),
        ("[embed.project]\nsteps = -1\n", r"embed\.project\.steps must not be negative"),
        ("seed = -1\n", r"seed must not be negative"),
        ("[fit]\nclinical = 'age'\n", r"fit\.clinical must be a list"),
        ("[fit]\nfolds = 2.5\n", r"fit\.folds must be an integer"),
        ("[align]\ncnn = 1\n", r"align\.cnn must be true or false"),
        ("[finetune]\nresume = 'g.pkl'\n", r"finetune\.resume is set by the run"),
        ("seed = 'zero'\n", r"seed"),
        ("cohort = \n", r"not valid TOML"),
    ],
)
def test_a_bad_config_names_the_key(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(InputError, match=message) as err:
        load_config(path)
    assert str(path) in str(err.value)


def test_a_missing_config_file_is_named(tmp_path):
    with pytest.raises(InputError, match="config file not found"):
        load_config(tmp_path / "absent.toml")
