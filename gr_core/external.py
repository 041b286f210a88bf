"""External benchmark data sets: which folder holds them and where their files come from.

FB15k-237, WN18RR and MovieLens-100k may not be redistributed with the project,
so they are read from a data folder the user names: the ``data_dir`` argument
(``--data-dir DIR`` on the command line), else the environment variable
``GR_DATA_DIR``. Each data set lives in ``DIR/<name>/``. A missing folder or
file raises ``DatasetError`` saying what to put where and where to get it;
nothing is downloaded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from gr_core.errors import DatasetError

DATA_DIR_VARIABLE = "GR_DATA_DIR"
SPLIT_FILES = ("train.txt", "valid.txt", "test.txt")


@dataclass(frozen=True)
class ExternalDataset:
    """What an external data set's folder must hold, and where the files come from."""

    name: str
    required: tuple[str, ...]  # file names that must be in DIR/<name>/
    layout: str  # one line per file: what it holds
    source: str
    licence: str


EXTERNAL_DATASETS: dict[str, ExternalDataset] = {
    "fb15k-237": ExternalDataset(
        name="fb15k-237",
        required=(*SPLIT_FILES, "entity_names.tsv", "relation_names.tsv"),
        layout="train.txt, valid.txt, test.txt: head<TAB>relation<TAB>tail per line\n"
        "entity_names.tsv: Freebase MID<TAB>readable name\n"
        "relation_names.tsv: relation<TAB>readable name",
        source="the split of Toutanova & Chen (2015) as distributed with ConvE "
        "(github.com/TimDettmers/ConvE, FB15k-237.tar.gz); names from KG-BERT "
        "(github.com/yao8839836/kg-bert, data/FB15k-237/entity2text.txt and relation2text.txt)",
        licence="research use; not redistributed with this project",
    ),
    "wn18rr": ExternalDataset(
        name="wn18rr",
        required=(*SPLIT_FILES, "entity_names.tsv"),
        layout="train.txt, valid.txt, test.txt: head<TAB>relation<TAB>tail per line\n"
        "entity_names.tsv: synset offset<TAB>readable name (e.g. the first lemma)\n"
        "relation_names.tsv: optional, relation<TAB>readable name",
        source="Dettmers et al. (2018), distributed with ConvE "
        "(github.com/TimDettmers/ConvE, WN18RR.tar.gz); names from WordNet 3.0",
        licence="research use; not redistributed with this project",
    ),
    "ml-100k": ExternalDataset(
        name="ml-100k",
        required=("u.data", "u.item"),
        layout="u.data: user<TAB>movie<TAB>rating<TAB>timestamp per line\n"
        "u.item: movie|title|... per line, Latin-1 (the other files of the archive may stay)",
        source="GroupLens MovieLens 100K (Harper & Konstan 2015), "
        "files.grouplens.org/datasets/movielens/ml-100k.zip (it unzips to ml-100k/)",
        licence="GroupLens terms (ml-100k/README): no redistribution",
    ),
}
EXTERNAL_NAMES: tuple[str, ...] = tuple(EXTERNAL_DATASETS)


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> tuple[Path | None, str]:
    """Return the data folder and where it was named: the argument, else GR_DATA_DIR.

    The folder is None when neither names one. Nothing is checked here.
    """
    if data_dir is not None and os.fspath(data_dir):
        return Path(data_dir).expanduser(), "given"
    from_environment = os.environ.get(DATA_DIR_VARIABLE, "")
    if from_environment:
        return Path(from_environment).expanduser(), f"from {DATA_DIR_VARIABLE}"
    return None, "unset"


def external_folder(name: str, data_dir: str | os.PathLike | None = None) -> Path:
    """Return ``DIR/<name>/`` for an external data set, checked to hold its required files.

    Raises DatasetError, saying where to put which files and where they come
    from, when no data folder is named, or it, the data set's folder or one of
    its files is missing.
    """
    spec = EXTERNAL_DATASETS[name]
    root, origin = resolve_data_dir(data_dir)
    if root is None:
        raise DatasetError(
            f"data set {name!r} is not bundled with the project and no data folder is named: "
            f"pass --data-dir DIR (data_dir= in Python) or set {DATA_DIR_VARIABLE}=DIR.\n"
            + how_to_provide(name, "DIR")
        )
    named = "" if origin == "given" else f" (named by {DATA_DIR_VARIABLE})"
    if not root.is_dir():
        raise DatasetError(
            f"the data folder {str(root)!r}{named} does not exist or is not a folder.\n"
            + how_to_provide(name, str(root))
        )
    folder = root / name
    if not folder.is_dir():
        raise DatasetError(
            f"the data folder {str(root)!r}{named} has no {name}/ folder.\n"
            + how_to_provide(name, str(root))
        )
    missing = [file for file in spec.required if not (folder / file).is_file()]
    if missing:
        raise DatasetError(
            f"{str(folder)!r}{named} lacks {', '.join(missing)}.\n"
            + how_to_provide(name, str(root))
        )
    return folder


def how_to_provide(name: str, root: str) -> str:
    """Return the instructions for placing an external data set's files under ``root``."""
    spec = EXTERNAL_DATASETS[name]
    layout = "\n".join(f"  {line}" for line in spec.layout.split("\n"))
    return (
        f"Put these files in {Path(root) / name}{os.sep}:\n{layout}\n"
        f"Source: {spec.source}.\nLicence: {spec.licence}."
    )
