"""Rebuild the built-in default model ``nmfsep/data/default_model.npz`` and its credits.

    OMP_NUM_THREADS=1 .venv/bin/python tools/make_default_model.py [CORPUS_DIR] [--readme-only]
        [--settings-only] [--recipe NAME --out PATH]

``--recipe``/``--out`` build a candidate recipe's model elsewhere (the README is not written);
``--readme-only`` rewrites the README from the shipped model's metadata; ``--settings-only``
gives the shipped model the separation settings of ``SHIPPED`` (or ``--recipe``) without
training again, when that recipe trains exactly what the shipped one did (the same train key:
the bases and the refiner do not depend on the separation settings), and rewrites the README.

CORPUS_DIR is the training corpus of real recordings (default ``../shared/corpus``: 34 speakers in
24 languages, 99 noise recordings in 14 categories, with ``corpus.json`` holding each file's
licence and credit). The model is trained on **all** of its speech and noise files (not the
music stems) with the recipe that won on the held-out folds of ``bench/generalise.py``
(``bench/_generalise_methods.py``: ``SHIPPED``); no file of the development set
(``../shared/data``) or of the evaluation recordings is used.

Writes

* ``nmfsep/data/default_model.npz`` (float32, checked ≤ 10 MB), whose metadata holds the recipe,
  the separation settings the built-in path should use, and ``credits``: one entry per corpus
  file used (id, file, kind, category / language, credit, licence, package and version);
* ``nmfsep/data/README.md``: the same credits as tables, with the licence notes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

MAX_BYTES = 10 * 1024 * 1024


def _used(e: dict, exclude: tuple[str, ...]) -> bool:
    """Speech and noise files, less the noise categories the recipe leaves out."""
    if e["kind"] == "speech":
        return True
    return e["kind"] == "noise" and e.get("category", "").split("/")[0] not in exclude


def credits_of(corpus: dict, exclude: tuple[str, ...] = ()) -> list[dict]:
    out = []
    for e in corpus["entries"]:
        if not _used(e, exclude):
            continue
        item = {
            "id": e["id"],
            "file": e["file"],
            "kind": e["kind"],
            "credit": e["credit"],
            "license": e["license"],
            "package": f"{e['package']} {e['package_version']}",
            "original_files": len(e.get("original_files", [])),
            "seconds": e["duration_s"],
        }
        if e["kind"] == "speech":
            item["language"] = e.get("language_name", e.get("language"))
            item["sex"] = e.get("sex")
        else:
            item["category"] = e.get("category")
        out.append(item)
    return out


def write_readme(path: Path, credits: list[dict], recipe: str, settings: dict) -> None:
    import _generalise_methods as gm

    licences = sorted({c["license"] for c in credits})
    lines = [
        "# Built-in model: data and credits",
        "",
        "`default_model.npz` is the speech/noise model that `nmfsep separate` uses without `-m`.",
        "It was trained by `tools/make_default_model.py` on the speech and noise recordings of the",
        "training corpus (`shared/corpus`, real recordings made by other people and shipped in",
        "Debian packages, only decoded, down-mixed, resampled to 16 kHz, trimmed and cut) — "
        f"{sum(c['kind'] == 'speech' for c in credits)} speakers and "
        f"{sum(c['kind'] == 'noise' for c in credits)} noise recordings, every one listed below.",
        "None of the development cases (`shared/data`) or evaluation recordings is used."
        + (
            f" Noises of the categories {', '.join(gm.RECIPES[recipe].exclude)} are left out"
            " of the noise bases (speech-like: the noise bases would take unseen voices;"
            " measured on the folds)"
            + (
                "; the learned mask refiner (`nmfsep/refine.py`) is trained on synthetic"
                " mixtures of every speaker and every noise recording listed here, those included."
                if isinstance(gm.RECIPES[recipe], gm.Refined)
                else "."
            )
            if recipe in gm.RECIPES and gm.RECIPES[recipe].exclude
            else ""
        ),
        "",
        f"Recipe: `{recipe}` (`bench/_generalise_methods.py`; chosen on the held-out folds of",
        "`bench/generalise.py`, see `bench/README.md`). Separation settings of the built-in path",
        f"recorded in the model metadata (`separation`): `{json.dumps(settings)}`.",
        "",
        "The model's bases are derived from these recordings, so the model carries the attribution",
        "duties of its parts: the credits are also stored in the model itself",
        '(`metadata["credits"]`, shown by `nmfsep info default --json`).',
        "",
        "`trained_refiner.npz` is the learned mask refiner that `nmfsep train --refiner SOURCE`",
        "attaches to a user's model. It was trained by `tools/make_trained_refiner.py` on",
        "synthetic mixtures of every speaker and every noise recording listed below, each",
        "separated by models trained on that speaker's and that noise's recordings (see",
        "`bench/supervised_refiner.py`); the same credits are stored in it and copied into every",
        'model trained with it (`metadata["refiner_credits"]`).',
        "",
        "## Licences",
        "",
        f"Licences of the files used: {', '.join(licences)}.",
        "",
        "* **GPL-2 / GPL-2+ / GPL-3+** (Tux Paint stamps, KDE Kajongg / KTuberling / KLettres,",
        "  Warzone 2100 and other game data): redistributable; the source packages",
        "  (Debian, exact versions below) are the corresponding source.",
        "* **CC-BY-SA-3.0** (0 A.D. audio by Wildfire Games — http://www.wildfiregames.com/ —,",
        "  Minetest sounds, OpenSFX, most Red Eclipse ambiences): attribution (credit column),",
        "  derived works under the same licence (http://creativecommons.org/licenses/by-sa/3.0/).",
        "* **CC-BY-3.0** (some Red Eclipse ambiences, freesound.org authors): attribution.",
        "* **Free Art License 1.3** (GCompris sound effects by Lionel Allorge and Yves Combe):",
        "  copyleft, modification allowed with attribution, derived works under the same licence.",
        "",
        "## Speech",
        "",
        "| id | language | sex | seconds | package | licence | credit |",
        "| --- | --- | --- | ---: | --- | --- | --- |",
    ]
    for c in credits:
        if c["kind"] == "speech":
            lines.append(
                f"| `{c['id']}` | {c['language']} | {c['sex']} | {c['seconds']:.1f} | "
                f"{c['package']} | {c['license']} | {c['credit']} |"
            )
    lines += [
        "",
        "## Noise",
        "",
        "| id | category | seconds | package | licence | credit |",
        "| --- | --- | ---: | --- | --- | --- |",
    ]
    for c in credits:
        if c["kind"] == "noise":
            lines.append(
                f"| `{c['id']}` | {c['category']} | {c['seconds']:.1f} | {c['package']} | "
                f"{c['license']} | {c['credit']} |"
            )
    lines.append("")
    path.write_text("\n".join(lines))


def main() -> None:
    import _generalise_methods as gm
    import soundfile as sf

    from nmfsep import __version__

    args = [a for a in sys.argv[1:] if a not in ("--readme-only", "--settings-only")]
    options = {}
    for flag in ("--recipe", "--out"):  # a candidate recipe, written elsewhere
        if flag in args:
            i = args.index(flag)
            options[flag] = args[i + 1]
            del args[i : i + 2]
    corpus_dir = Path(args[0]) if args else ROOT.parent / "shared" / "corpus"
    corpus = json.loads((corpus_dir / "corpus.json").read_text())
    recipe = gm.RECIPES[options.get("--recipe", gm.SHIPPED)]
    # a recipe with a learned refiner trains it on every noise (the bases skip the excluded
    # categories themselves): all of them are used, and credited
    exclude = () if isinstance(recipe, gm.Refined) else recipe.exclude
    credits = credits_of(corpus, exclude)
    out = Path(options.get("--out", ROOT / "nmfsep" / "data" / "default_model.npz"))
    if "--readme-only" in sys.argv:  # rewrite the README from the shipped model's metadata
        from nmfsep.model import load_model

        meta = load_model(out).metadata
        write_readme(
            out.parent / "README.md", meta["credits"], meta["recipe"]["name"], meta["separation"]
        )
        return
    if "--settings-only" in sys.argv:
        from nmfsep.model import load_model

        model = load_model(out)
        meta = model.metadata
        trained = {k: v for k, v in meta["recipe"].items() if k != "name"}
        if trained != json.loads(json.dumps(recipe.train_params())):
            raise SystemExit(f"{recipe.name} trains something else than {meta['recipe']['name']}")
        meta["recipe"] = {"name": recipe.name, **recipe.train_params()}
        meta["separation"] = recipe.builtin_settings()
        model.save(out)
        write_readme(out.parent / "README.md", meta["credits"], recipe.name, meta["separation"])
        print(f"{out}: separation settings {json.dumps(meta['separation'])}")
        return
    speech, noise, categories = {}, {}, {}
    for e in corpus["entries"]:
        if _used(e, exclude):
            y, sr = sf.read(corpus_dir / e["file"], dtype="float32", always_2d=True)
            if sr != gm.SR:
                raise SystemExit(f"{e['file']}: {sr} Hz, expected {gm.SR}")
            y = y.mean(axis=1)
            (speech if e["kind"] == "speech" else noise)[e["id"]] = y
            if e["kind"] == "noise":
                categories[e["id"]] = e["category"]
    model = recipe.train(speech, noise, categories)
    model.metadata.update(
        {
            "nmfsep_version": __version__,
            "description": "built-in speech vs general noise model, trained on the corpus of real "
            f"recordings ({len(speech)} speakers; {len(noise)} noise recordings"
            + (
                f", {' and '.join(recipe.exclude)} noises for the refiner only"
                if recipe.exclude and exclude != recipe.exclude
                else f", without {' and '.join(recipe.exclude)} noises"
                if recipe.exclude
                else ""
            )
            + ")",
            "built_by": "tools/make_default_model.py",
            "recipe": {"name": recipe.name, **recipe.train_params()},
            "separation": recipe.builtin_settings(),
            "credits": credits,
        }
    )
    for name, W in model.bases.items():
        model.bases[name] = np.ascontiguousarray(W, dtype=np.float32)
    model.save(out)
    size = out.stat().st_size
    if size > MAX_BYTES:
        raise SystemExit(f"{out} is {size / 2**20:.1f} MiB, over the 10 MB limit")
    if "--out" not in options:
        write_readme(out.parent / "README.md", credits, recipe.name, recipe.builtin_settings())
    print(f"wrote {out} ({size / 2**20:.2f} MiB): {model.n_components}; credits: {len(credits)}")


if __name__ == "__main__":
    main()
