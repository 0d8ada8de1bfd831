"""Does the health direction read the face?  The explain stage's "done when" measured on the synthetic world.

Two synthetic cohorts from one seed go through the whole pipeline (`stylesurv.pipeline.run_pipeline`:
unaligned photos with their true landmarks, align, embed with the encoder and ``--steps`` refinement steps,
CoxNet with 5-fold CV on the codes alone and adjusted for age and stage (one Cox model, the clinical columns
unpenalised: the pipeline's "adjusted" model, whose direction the explain stage uses), explain): the plain
world, and the same patients with ``confounded`` backgrounds (the background follows the outcome in the 70 %
training split only; the 30 % test patients render identically in both worlds).  As `stylesurv run` does
by default, the models are fitted on the StyleSpace channels of the codes (``--space codes``: on the W+ codes)
and the face-bound ones (the same models on codes kept to the face subspace at ``--face-threshold``) are
explained (``--no-face-bound``: the models on all of the codes).  ``--latent-only`` explains the CoxNet on the
codes alone instead of the adjusted one, as Hagag et al. do.  Then:

1. health attribute vs the true facial risk (truth.csv ``lp_face``, and each facial factor) on held-out
   patients: the model refitted on the training split, the direction from its coefficients, the attribute of
   the unseen test patients (`explain.pipeline.held_out_health`); target |r| >= 0.8; next to it the other
   model's (latent-only or adjusted) held-out r;
2. share of the pixel-change energy along d inside the face mask, next to random directions and to the face's
   share of the image area (the explain stage's attribution); target >= 0.8.  Next to it: the same share
   inside the face with its contour margin, the covariance-weighted (pattern) direction, each W+ layer group's
   part of the edit, the direction with the nuisance span projected out, and two references: the latent
   direction of the true facial risk (a ridge probe of lp_face on the codes: what this generator and embedding
   allow a perfect linear model), and the world itself (the renderer's own photos changed along the true
   facial risk: what a perfect model and generator would show).  And the face subspace (`explain.localize`):
   the face-local direction (d projected onto the code directions whose image change lies >= 0.8 inside the
   face masks), its face share and cosine with d, and the model refitted on the codes inside and outside the
   face subspace (held-out C of the latent part, r with lp_face): how much of the signal the face carries;
3. |cosine| between d and the background and clothing directions (ridge probes of the true factors and of
   the colours measured in the aligned photos; the explain stage's probes); target <= 0.2;
4. held-out Harrell's C on the test split: the plain world's model (reference), the confounded world's
   model on plain codes, and on codes with the nuisance directions removed (from the true factors and
   from the photo measurements, and the counterfactual span: the code changes when up to
   ``--counterfactual-patients`` training photos are re-embedded with background and clothing recoloured,
   `explain.counterfactual`; `explain.pipeline.remove_nuisance_evaluation`); target: the plain model drops
   below the reference while the cleaned one keeps it (within ``--tolerance``).

Run: ``python bench/bench_explain.py`` (600 patients per world, 50 steps; see --help).  Small check of the
bench itself: ``python bench/bench_explain.py --quick`` (200 patients, 10 steps).  ``--out DIR`` keeps the
runs and reuses their finished stages on a rerun.  ``--json PATH`` also writes every row's value under a
stable key (``<row>.<column>``, bench/benchjson.py): ``explained.*`` is the explained model (face-bound
unless ``--no-face-bound``), ``not_face_bound.*`` the same model on all of the codes, ``other_model.*`` the
codes-alone CoxNet (the adjusted one with ``--latent-only``), ``confounded_check.*`` check 4.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from benchjson import add_json_option, slug, write_json
from rich.console import Console
from rich.table import Table

from stylesurv.app.pipeline import BASE_ENCODER, BASE_GENERATOR
from stylesurv.cohort.table import load_clinical
from stylesurv.core.latents import Latents
from stylesurv.explain.direction import GROUP_RESOLUTIONS
from stylesurv.survival.bundle import load_bundle

BACKGROUND_PROBES = ("background_value", "background_saturation", "background_hue_cos", "background_hue_sin",
                     "background_brightness", "background_red_green", "background_yellow_blue")  # fmt: skip
CLOTHING_PROBES = ("clothing_value", "clothing_saturation", "clothing_hue_cos", "clothing_hue_sin",
                   "clothing_brightness", "clothing_red_green", "clothing_yellow_blue")  # fmt: skip
FACIAL_FACTORS = ("lp_face", "cachexia", "pallor", "periorbital")
ADJUSTERS = ("age", "stage")  # clinical covariates the adjusted model holds fixed


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--generator", type=Path, default=BASE_GENERATOR, help="generator checkpoint")
    parser.add_argument(
        "--encoder", default=str(BASE_ENCODER), help="encoder folder of that generator ('' for none)"
    )
    parser.add_argument("--n", type=int, default=600, help="patients per synthetic cohort")
    parser.add_argument("--steps", type=int, default=50, help="embedding refinement steps after the encoder")
    parser.add_argument("--seed", type=int, default=0, help="seed of the worlds and of every stage")
    parser.add_argument("--out", type=Path, default=None, help="work folder (kept); default: a temporary one")
    parser.add_argument("--finetune-kimg", type=float, default=0.0, help="fine-tune the generator first")
    parser.add_argument("--attribution-patients", type=int, default=64, help="patients of the attribution")
    parser.add_argument("--random-directions", type=int, default=8, help="random directions (baseline)")
    parser.add_argument("--tolerance", type=float, default=0.02, help="C-index tolerance of check 4")
    parser.add_argument("--counterfactual-patients", type=int, default=200,
                        help="training patients re-embedded, background and clothing recoloured")  # fmt: skip
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--quick", action="store_true", help="a small check: --n 200 --steps 10")
    parser.add_argument(
        "--latent-only", action="store_true", help="explain CoxNet on the codes alone (not adjusted)"
    )
    parser.add_argument(
        "--space", choices=("styles", "codes"), default="styles",
        help="latent features of the models: StyleSpace channels (default, as `stylesurv run`) or W+ codes",
    )  # fmt: skip
    parser.add_argument(
        "--no-face-bound", dest="face_bound", action="store_false",
        help="explain the models on all of the codes, not the face-bound ones (`stylesurv run` explains)",
    )  # fmt: skip
    parser.add_argument(
        "--face-threshold", type=float, default=0.5, help="face-share threshold of the face-bound models"
    )
    parser.add_argument(
        "--effects-beyond-face", action="store_true",
        help="worlds whose health factors also change the outline, neck and ears "
        "(synth --effects-beyond-face)",
    )  # fmt: skip
    add_json_option(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.steps = 200, 10
    return args


def synthesize(
    cohort: Path, n: int, seed: int, resolution: int, confounded: bool, beyond_face: bool = False
) -> None:
    """Write the synthetic cohort (unaligned photos + true landmarks, as the demo), unless already there."""
    from stylesurv.cohort.synthetic import make_world, write_world

    wanted = {"kind": "cohort", "n": n, "seed": seed, "resolution": resolution, "unaligned": True}
    wanted.update(confounded=confounded, face_bound=not beyond_face)
    done = cohort / "synth.json"
    if done.is_file() and all(json.loads(done.read_text()).get(k, False) == v for k, v in wanted.items()):
        return
    world = make_world("cohort", n, seed, confounded=confounded, beyond_face=beyond_face)
    write_world(world, cohort, resolution=resolution, unaligned=True)


def run_world(root: Path, args: argparse.Namespace, resolution: int, confounded: bool) -> dict[str, float]:
    """Synthesize one world and run the pipeline on it; returns the seconds of each stage computed."""
    import dataclasses

    from stylesurv.app.config import FINETUNE_DEFAULTS, FIT_DEFAULTS, RunConfig
    from stylesurv.app.pipeline import run_pipeline
    from stylesurv.explain.config import ExplainConfig
    from stylesurv.faces.folder import AlignConfig
    from stylesurv.invert.embed import EmbedConfig
    from stylesurv.invert.project import ProjectConfig

    cohort = root / "cohort"
    start = time.perf_counter()
    synthesize(cohort, args.n, args.seed, resolution, confounded, args.effects_beyond_face)
    seconds = {"synth": time.perf_counter() - start}
    config = RunConfig(
        cohort=str(cohort),
        generator=str(args.generator),
        encoder=args.encoder,
        encoder_steps=0,
        out=str(root / "run"),
        seed=args.seed,
        landmarks=str(cohort / "landmarks.csv"),
        align=AlignConfig(resolution=resolution),
        finetune=dataclasses.replace(FINETUNE_DEFAULTS, kimg=args.finetune_kimg),
        embed=EmbedConfig(project=ProjectConfig(space="wplus", steps=args.steps), batch=50),
        fit=dataclasses.replace(
            FIT_DEFAULTS,
            models=("coxnet", "adjusted") + (("coxnet_face", "adjusted_face") if args.face_bound else ()),
            clinical=tuple(ADJUSTERS),
            folds=5,
            repeats=1,
            permutations=0,
            space="" if args.space == "codes" else args.space,
            face_threshold=args.face_threshold,
        ),
        explain=ExplainConfig(
            model=("coxnet" if args.latent_only else "coxnet_adjusted")
            + ("_face" if args.face_bound else ""),
            attribution_patients=args.attribution_patients,
            random_directions=args.random_directions,
        ),
    )
    result = run_pipeline(config)
    seconds.update(result.stage_times())
    return seconds


def true_change_shares(
    truth_csv: Path, resolution: int, margin: int, count: int, seed: int
) -> dict[str, float]:
    """Energy shares of the renderer's own change when the facial factors move toward lower true risk.

    Each of ``count`` seeded patients is rendered aligned as in its cohort, then again with cachexia, pallor
    and periorbital moved by a small step along minus the true coefficients; the change energy is split by
    the unedited rendering's labels, as the attribution does.
    """
    from stylesurv.cohort.render import render_aligned
    from stylesurv.cohort.simulate import SurvivalModel
    from stylesurv.core.aligned import REGIONS
    from stylesurv.explain.attribution import face_with_margin, mean_shares, region_share, region_shares

    truth = pd.read_csv(truth_csv, dtype={"patient_id": str})
    model = SurvivalModel()
    betas = {
        "cachexia": model.beta_cachexia,
        "pallor": model.beta_pallor,
        "periorbital": model.beta_periorbital,
    }
    norm = float(np.sqrt(sum(b * b for b in betas.values())))
    rows = np.random.default_rng(seed).choice(len(truth), size=min(count, len(truth)), replace=False)
    energy, labels = [], []
    for i in np.sort(rows):
        subject = truth.iloc[int(i)].to_dict()
        before = render_aligned(subject, resolution)[0]
        moved = {**subject, **{k: subject[k] - 0.05 * b / norm for k, b in betas.items()}}
        after = render_aligned(moved, resolution)[0]
        energy.append(((after.rgb.astype(np.float64) - before.rgb) ** 2).sum(axis=-1))
        labels.append(before.labels)
    e, m = np.stack(energy), np.stack(labels)
    shares = dict(zip(REGIONS, map(float, mean_shares(region_shares(e, m))), strict=True))
    wide = region_share(e, face_with_margin(m, margin))
    return {**shares, "face_with_margin": float(np.nanmean(wide))}


def true_direction_shares(folder: Path, patients: int, seed: int, styles: bool) -> dict[str, float]:
    """Where the generator puts the change along the latent direction of the TRUE facial risk.

    A ridge probe of truth.csv's ``lp_face`` on the run's codes (the best linear read-out of the true facial
    risk a model could find in these codes) is measured exactly as d is: same patients, masks, step and
    generator.  It separates what the generator and embedding allow from what the model found.
    """
    from stylesurv.app.pipeline import read_run
    from stylesurv.core.aligned import load_masks
    from stylesurv.core.latents import load_latents
    from stylesurv.explain.attribution import attribute_regions
    from stylesurv.explain.direction import health_direction
    from stylesurv.explain.nuisance import fit_probe
    from stylesurv.gan.checkpoint import load_generator
    from stylesurv.gan.render import style_space_view

    artifacts = read_run(folder / "run")
    generator = load_generator(artifacts.generator)
    latents = load_latents(artifacts.latents)
    if styles:
        latents, generator = style_space_view(latents, generator)
    codes = np.asarray(latents.wplus if latents.wplus is not None else latents.w, dtype=np.float64)
    truth = pd.read_csv(folder / "cohort" / "truth.csv", dtype={"patient_id": str}).set_index("patient_id")
    lp_face = truth.loc[latents.patient_id.tolist(), "lp_face"].to_numpy(dtype=np.float64)
    weights, r2 = fit_probe(codes, lp_face, seed=seed)
    direction = health_direction(weights.reshape(codes.shape[1:]), codes)  # a risk gradient, as a model's
    rows = np.sort(
        np.random.default_rng(seed).choice(len(codes), size=min(patients, len(codes)), replace=False)
    )
    masks, fallback = load_masks(
        artifacts.aligned, latents.patient_id[rows].tolist(), generator.img_resolution
    )
    found = attribute_regions(
        generator, codes[rows], direction, masks, n_random=0, seed=seed, n_fallback_masks=fallback
    )
    assert found.face_margin is not None
    return {"face": found.health["face"], "face_with_margin": found.face_margin["health"], "r2_cv": r2}


def as_fitted(latents: Latents, folder: Path, args: argparse.Namespace) -> Latents:
    """The latents with the style codes of the run's generator when the models were fitted on styles."""
    if args.space != "styles":
        return latents
    from stylesurv.app.pipeline import read_run
    from stylesurv.gan.checkpoint import load_generator
    from stylesurv.gan.stylespace import with_styles

    return with_styles(latents, load_generator(read_run(folder / "run").generator).eval())


def largest_cosine(probes: list[dict], names: tuple[str, ...]) -> tuple[float, str]:
    """The largest |cosine| with d among the named probes, and which probe (source:name) it is."""
    found = [(abs(p["cosine"]), f"{p['source']}:{p['name']}") for p in probes if p["name"] in names]
    return max(found) if found else (float("nan"), "none")


def checks(
    plain: Path, confounded: Path, args: argparse.Namespace, resolution: int, extra: dict | None = None
) -> list[dict]:
    """The four measurements on the two finished runs, as table rows (each with its JSON ``key``).

    ``extra`` receives keyed values that are in the rows' text only (numbers of directions removed).
    """
    extra = {} if extra is None else extra
    from stylesurv.core.latents import load_latents
    from stylesurv.studies.refit import held_out_health, remove_nuisance_evaluation
    from stylesurv.survival.metrics import harrell_c

    rows: list[dict] = []

    def row(
        check: str, measure: str, value: float, target: str = "", ok: bool | None = None, *, key: str
    ) -> None:
        rows.append({"check": check, "measure": measure, "value": value, "target": target,
                     "pass": "" if ok is None else ("yes" if ok else "NO"), "key": key})  # fmt: skip

    truth_b = pd.read_csv(confounded / "cohort" / "truth.csv", dtype={"patient_id": str})
    test_ids = truth_b.loc[truth_b["split"] == "test", "patient_id"].tolist()

    # 1. held-out health attribute vs the true facial factors (the plain world)
    latents_a = as_fitted(load_latents(plain / "run" / "embed" / "latents.npz"), plain, args)
    truth_a_csv = plain / "cohort" / "truth.csv"
    suffix = "_face" if args.face_bound else ""
    model, other = ("coxnet", "coxnet_adjusted") if args.latent_only else ("coxnet_adjusted", "coxnet")
    model, other = model + suffix, other + suffix
    bound = f", face-bound at {args.face_threshold:g}" if args.face_bound else ""
    label = {
        "coxnet" + suffix: f"on the codes alone{bound}",
        "coxnet_adjusted" + suffix: f"adjusted for {', '.join(ADJUSTERS)}{bound}",
    }
    held = held_out_health(
        load_bundle(plain / "run" / "fit" / model),
        latents_a,
        load_clinical(plain / "cohort"),
        truth_a_csv,
        args.seed,
        test_ids,
    )
    r = held["correlations"].get("lp_face", float("nan"))
    measure = f"r(attribute, lp_face), {held['n_test']} held out (CoxNet {label[model]})"
    row("1 attribute", measure, r, "|r| >= 0.8", abs(r) >= 0.8, key="explained.held_out_r_lp_face")
    for factor in FACIAL_FACTORS[1:]:
        row("1 attribute", f"r(attribute, {factor}), held out", held["correlations"].get(factor, np.nan),
            key=f"explained.held_out_r_{factor}")  # fmt: skip
    held_other = held_out_health(
        load_bundle(plain / "run" / "fit" / other),
        latents_a,
        load_clinical(plain / "cohort"),
        truth_a_csv,
        args.seed,
        test_ids,
    )
    row("1 attribute", f"same, CoxNet {label[other]}",
        held_other["correlations"].get("lp_face", float("nan")),
        key="other_model.held_out_r_lp_face")  # fmt: skip
    explain = json.loads((plain / "run" / "explain" / "summary.json").read_text())
    in_sample = explain.get("truth_correlations", {}).get("lp_face", float("nan"))
    row("1 attribute", f"r(attribute, lp_face), all {explain['n_patients']} (in sample)", in_sample,
        key="explained.in_sample_r_lp_face")  # fmt: skip
    pattern = explain.get("pattern", {})
    row("1 attribute", "pattern direction: r(attribute, lp_face), held out",
        held.get("pattern_correlations", {}).get("lp_face", float("nan")),
        key="pattern_direction.held_out_r_lp_face")  # fmt: skip
    row("1 attribute", "pattern direction: same, in sample",
        pattern.get("truth_correlations", {}).get("lp_face", float("nan")),
        key="pattern_direction.in_sample_r_lp_face")  # fmt: skip
    truth_a = pd.read_csv(truth_a_csv, dtype={"patient_id": str}).set_index("patient_id")
    clinical = pd.read_csv(plain / "cohort" / "clinical.csv", dtype={"patient_id": str}).set_index(
        "patient_id"
    )
    test = clinical.loc[test_ids]
    oracle = harrell_c(test["time"].to_numpy(), test["event"].to_numpy(), truth_a.loc[test_ids, "lp_face"])
    row("1 attribute", "held-out C of the refitted model", held["c_index_test"], key="explained.held_out_c")
    if not args.latent_only:
        row("1 attribute", "same, its face part alone", held["c_index_face_test"],
            key="explained.held_out_c_face_part")  # fmt: skip
    row("1 attribute", "held-out C of the true lp_face (oracle)", oracle, key="oracle.held_out_c_lp_face")
    if args.face_bound:
        free = model.removesuffix("_face")
        held_free = held_out_health(
            load_bundle(plain / "run" / "fit" / free),
            latents_a,
            load_clinical(plain / "cohort"),
            truth_a_csv,
            args.seed,
            test_ids,
        )
        row("1 attribute", f"{free} (not face-bound): held-out r(attribute, lp_face)",
            held_free["correlations"].get("lp_face", float("nan")),
            key="not_face_bound.held_out_r_lp_face")  # fmt: skip
        row("1 attribute", f"{free} (not face-bound): held-out C", held_free["c_index_test"],
            key="not_face_bound.held_out_c")  # fmt: skip
        if not args.latent_only:
            row("1 attribute", f"{free} (not face-bound): same, its face part alone",
                held_free["c_index_face_test"], key="not_face_bound.held_out_c_face_part")  # fmt: skip
        for name, role in ((model, "explained"), (free, "not_face_bound")):
            cv = json.loads((plain / "run" / "fit" / name / "cv_results.json").read_text())
            row("1 attribute", f"{name}: 5-fold CV C over all patients", cv["oof_harrell_c"],
                key=f"{role}.cv_5fold_c")  # fmt: skip

    # 2. where the change happens
    attribution = explain.get("attribution")
    if attribution is None:
        row("2 face share", "attribution missing (no masks?)", float("nan"), ">= 0.8", False,
            key="explained.face_share_along_d")  # fmt: skip
    else:
        face = attribution["health"]["face"]
        count = attribution["n_patients"]
        row(
            "2 face share",
            f"energy share in face mask, along d ({count} patients)",
            face,
            ">= 0.8",
            face >= 0.8,
            key="explained.face_share_along_d",
        )
        random_mean = attribution["random_mean"]["face"]
        row("2 face share", f"same, {attribution['n_random']} random directions (mean)", random_mean,
            key="random_directions.face_share_mean")  # fmt: skip
        row("2 face share", "same, random directions (SD)", attribution["random_sd"]["face"],
            key="random_directions.face_share_sd")  # fmt: skip
        row("2 face share", "face share of the image area", attribution["area"]["face"],
            key="image_area.face_share")  # fmt: skip
        for region in ("background", "clothing", "other"):
            row("2 face share", f"energy share in {region}, along d", attribution["health"][region],
                key=f"explained.{region}_share_along_d")  # fmt: skip
        wide = attribution.get("face_with_margin")
        margin = int(attribution.get("face_margin_px", 0))
        if wide is not None:
            label = f"face + {margin} px contour margin"
            row("2 face share", f"energy share in {label}, along d", wide["health"],
                key="explained.face_with_margin_share_along_d")  # fmt: skip
            row(
                "2 face share",
                f"same, random directions (mean +- {wide['random_sd']:.3f})",
                wide["random_mean"],
                key="random_directions.face_with_margin_share_mean",
            )
            row("2 face share", f"{label}: share of the image area", wide["area"],
                key="image_area.face_with_margin_share")  # fmt: skip
        groups = attribution.get("groups") or {}
        for name, group in sorted(groups.items(), key=lambda item: list(GROUP_RESOLUTIONS).index(item[0])):
            row(
                "2 face share",
                f"{name} layers' part of the edit: face share ({group['weight']:.2f} of |d|^2, "
                f"{group['energy_share']:.2f} of the energy)",
                group["health"]["face"],
                key=f"layer_group_{slug(name)}.face_share",
            )
            extra[f"layer_group_{slug(name)}.weight_of_d_squared"] = group["weight"]
            extra[f"layer_group_{slug(name)}.energy_share"] = group["energy_share"]
        own = explain.get("pattern", {}).get("attribution")
        if own is not None:
            cosine = explain["pattern"]["cosine_with_d"]
            row(
                "2 face share",
                f"pattern direction (cos with d {cosine:.2f}): face share",
                own["health"]["face"],
                key="pattern_direction.face_share",
            )
            extra["pattern_direction.cosine_with_d"] = cosine
            row("2 face share", "pattern direction: background share", own["health"]["background"],
                key="pattern_direction.background_share")  # fmt: skip
            row("2 face share", "pattern direction: face + margin share", own["face_with_margin"],
                key="pattern_direction.face_with_margin_share")  # fmt: skip
        orthogonal = explain.get("nuisance_orthogonal", {})
        if "attribution" in orthogonal:
            row(
                "2 face share",
                f"d with the nuisance span removed ({orthogonal['n_directions']} dirs, "
                f"{orthogonal['removed_share']:.3f} of |d|^2): face share",
                orthogonal["attribution"]["health"]["face"],
                key="d_without_nuisance_span.face_share",
            )
            extra["d_without_nuisance_span.directions"] = orthogonal["n_directions"]
            extra["d_without_nuisance_span.removed_share_of_d_squared"] = orthogonal["removed_share"]
        found = explain.get("face_subspace", {})
        if "attribution" in found:
            share = found["attribution"]["health"]["face"]
            row(
                "2 face share",
                f"face-local d (face subspace: {found['dim']} of {found['n_components']} directions at "
                f"{found['threshold']:.2f}; cos with d {found['cosine_with_d']:.2f}): face share",
                share,
                ">= 0.8",
                share >= 0.8,
                key="face_local_d.face_share",
            )
            extra["face_local_d.subspace_dim"] = found["dim"]
            extra["face_local_d.cosine_with_d"] = found["cosine_with_d"]
        refit = explain.get("face_subspace_refit", {})
        for key, name in (("all", "all of the codes"), ("face", "face subspace only"), ("rest", "the rest")):
            if f"c_index_{key}" in refit:
                row(
                    "2 face share",
                    f"refit on {name}: held-out C, latent part",
                    refit[f"c_index_latent_{key}"],
                    key=f"face_subspace_refit_{key}.held_out_c_latent",
                )
                row("2 face share", f"refit on {name}: held-out r(attribute, lp_face)",
                    refit.get(f"r_lp_face_{key}", float("nan")),
                    key=f"face_subspace_refit_{key}.held_out_r_lp_face")  # fmt: skip
                if f"face_share_{key}" in refit:
                    share = refit[f"face_share_{key}"]
                    row("2 face share", f"refit on {name}: face share of its direction", share, ">= 0.8",
                        share >= 0.8, key=f"face_subspace_refit_{key}.face_share")  # fmt: skip
        for point in refit.get("curve", []):
            label = f"face-bound refit at {point['threshold']:.2f} ({point['dim']} dirs)"
            nan = float("nan")
            at = f"face_bound_refit_t{round(100 * point['threshold']):03d}"
            extra[f"{at}.directions"] = point["dim"]
            row("2 face share", f"{label}: held-out C, latent part", point.get("c_index_latent", nan),
                key=f"{at}.held_out_c_latent")  # fmt: skip
            row("2 face share", f"{label}: held-out r(attribute, lp_face)", point.get("r_lp_face", nan),
                key=f"{at}.held_out_r_lp_face")  # fmt: skip
            if "face_share" in point:
                share = point["face_share"]
                row("2 face share", f"{label}: face share of its direction", share, ">= 0.8", share >= 0.8,
                    key=f"{at}.face_share")  # fmt: skip
        ceiling = true_direction_shares(plain, count, args.seed, args.space == "styles")
        row(
            "2 face share",
            f"latent direction of the true lp_face (probe CV R^2 {ceiling['r2_cv']:.2f}): face",
            ceiling["face"],
            key="true_lp_face_direction.face_share",
        )
        extra["true_lp_face_direction.probe_r2_cv"] = ceiling["r2_cv"]
        row("2 face share", "same, face + margin share", ceiling["face_with_margin"],
            key="true_lp_face_direction.face_with_margin_share")  # fmt: skip
        reference = true_change_shares(plain / "cohort" / "truth.csv", resolution, margin, count, args.seed)
        row("2 face share", "truth: renderer's own facial-risk change, face share", reference["face"],
            key="truth_renderer_change.face_share")  # fmt: skip
        row("2 face share", "truth: same, background share", reference["background"],
            key="truth_renderer_change.background_share")  # fmt: skip
        row("2 face share", f"truth: same, face + {margin} px margin share", reference["face_with_margin"],
            key="truth_renderer_change.face_with_margin_share")  # fmt: skip

    # 3. cosines with the nuisance directions
    probes = explain.get("probes", {}).get("items", [])
    for label, names in (("background", BACKGROUND_PROBES), ("clothing", CLOTHING_PROBES)):
        cosine, which = largest_cosine(probes, names)
        row("3 nuisance", f"max |cos(d, {label})| ({which})", cosine, "<= 0.2", bool(cosine <= 0.2),
            key=f"nuisance_{label}.max_abs_cos_with_d")  # fmt: skip
        r2 = max((p["r2_cv"] for p in probes if p["name"] in names), default=float("nan"))
        row("3 nuisance", f"best {label} probe CV R^2 (is it encoded?)", r2,
            key=f"nuisance_{label}.best_probe_r2_cv")  # fmt: skip

    # 4. confounded training split: C-index on the unconfounded test split, of the face part of the model
    # (the confounder acts on the codes; an adjusted model's clinical part is the same in both worlds and
    # would only dilute the comparison); the whole adjusted model's C-index next to it
    latents_b = as_fitted(load_latents(confounded / "run" / "embed" / "latents.npz"), confounded, args)
    reference = held["c_index_face_test"]
    for world, folder in (("plain", plain), ("confounded", confounded)):
        cv = json.loads((folder / "run" / "fit" / model / "cv_results.json").read_text())
        row("4 confounded", f"5-fold CV C over all patients, {world} world", cv["oof_harrell_c"],
            key=f"confounded_check.cv_5fold_c_{world}_world")  # fmt: skip
    part = "" if args.latent_only else ", face part"
    row("4 confounded", f"test C{part}, model of the plain world (reference)", reference,
        key="confounded_check.test_c_plain_world")  # fmt: skip
    if not args.latent_only:
        row("4 confounded", "whole adjusted model: test C, plain world (reference)", held["c_index_test"],
            key="confounded_check_whole_model.test_c_plain_world")  # fmt: skip
    from stylesurv.app.counterfactual import embed_run_counterfactuals

    train_ids = truth_b.loc[truth_b["split"] == "train", "patient_id"].tolist()
    swapped = as_fitted(
        embed_run_counterfactuals(confounded / "run", train_ids, args.counterfactual_patients, args.seed),
        confounded,
        args,
    )
    for source in ("truth", "photo", "counterfactual"):
        removal = remove_nuisance_evaluation(
            load_bundle(confounded / "run" / "fit" / model),
            latents_b,
            load_clinical(confounded / "cohort"),
            confounded / "run" / "aligned",
            confounded / "cohort" / "truth.csv",
            seed=args.seed,
            source=source,
            swapped=swapped if source == "counterfactual" else None,
        )
        plain_c, removed_c = removal["c_index_face_plain"], removal["c_index_face_removed"]
        if source == "truth":
            drops = plain_c < reference - args.tolerance
            row("4 confounded", f"test C{part}, confounded model, plain codes", plain_c, "drops", drops,
                key="confounded_check.test_c_confounded_plain_codes")  # fmt: skip
        keeps = removed_c >= reference - args.tolerance and removed_c > plain_c
        kind = "span" if source == "counterfactual" else "probes"
        measure = f"test C{part}, --remove-nuisance ({source} {kind}, {removal['n_directions']} dirs)"
        row("4 confounded", measure, removed_c, "keeps", keeps,
            key=f"confounded_check.test_c_removed_{source}_{kind}")  # fmt: skip
        extra[f"confounded_check.directions_removed_{source}_{kind}"] = removal["n_directions"]
        if not args.latent_only:
            for label in ("plain", "removed"):
                measure = f"whole adjusted model: test C, {label} codes ({source} {kind})"
                row("4 confounded", measure, removal[f"c_index_{label}"],
                    key=f"confounded_check_whole_model.test_c_{label}_codes_{source}_{kind}")  # fmt: skip
        if source == "truth":
            for label in ("plain", "removed"):
                r = removal.get(f"r_lp_face_{label}", float("nan"))
                row("4 confounded", f"r(attribute, lp_face) held out, {label} codes", r,
                    key=f"confounded_check.held_out_r_lp_face_{label}_codes")  # fmt: skip
    return rows


def print_table(rows: list[dict], title: str) -> None:
    table = Table(title=title)
    for column in ("check", "measure", "value", "target", "pass"):
        table.add_column(column, justify="right" if column == "value" else "left")
    for r in rows:
        value = r["value"]
        text = f"{value:.3f}" if isinstance(value, float) else str(value)
        table.add_row(r["check"], r["measure"], text, r.get("target", ""), r.get("pass", ""))
    Console(width=120).print(table)


def main(argv: list[str] | None = None) -> list[dict]:
    from stylesurv.gan.checkpoint import load_generator

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    resolution = int(load_generator(args.generator).img_resolution)
    out = args.out or Path(tempfile.mkdtemp(prefix="stylesurv-explain-bench-"))
    start = time.perf_counter()
    try:
        seconds = {
            "plain": run_world(out / "plain", args, resolution, confounded=False),
            "confounded": run_world(out / "confounded", args, resolution, confounded=True),
        }
        extra: dict = {}
        rows = checks(out / "plain", out / "confounded", args, resolution, extra)
    finally:
        if args.out is None:
            shutil.rmtree(out, ignore_errors=True)
    total = time.perf_counter() - start
    for world, stages in seconds.items():
        stage_text = ", ".join(f"{name} {s:.0f}" for name, s in stages.items())
        rows.append(
            {"check": "time", "measure": f"{world} world (s): {stage_text}", "value": sum(stages.values()),
             "key": f"time.{world}_world_s"}
        )  # fmt: skip
        for name, stage_seconds in stages.items():
            extra[f"time_{world}_world.{slug(name)}_s"] = stage_seconds
    rows.append(
        {"check": "time", "measure": "bench wall time (s)", "value": total, "key": "time.bench_wall_s"}
    )
    world = "synthetic world, effects beyond the face" if args.effects_beyond_face else "synthetic world"
    title = f"explain on the {world}: n={args.n} per world, {args.steps} steps, {resolution} px"
    print_table(rows, title)
    write_json(args.json, "explain", {**{r["key"]: r["value"] for r in rows}, **extra}, argv)
    return [{k: v for k, v in r.items() if k != "key"} for r in rows]


if __name__ == "__main__":
    main()
