"""Command-line interface: ``python -m gr_core {datasets,train,info,explain,evaluate,figure}``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from tqdm import tqdm

from gr_core import config as settings
from gr_core.data import BUILTIN_DATASETS, DatasetWarning, load_dataset
from gr_core.errors import GRError
from gr_core.evaluation import run_evaluation
from gr_core.explain import METHODS, Explainer
from gr_core.external import DATA_DIR_VARIABLE, EXTERNAL_NAMES, resolve_data_dir
from gr_core.figures import approximation_figure, html_to_png
from gr_core.ledger_file import LEDGER_DTYPES, LedgerPrecisionError
from gr_core.loo import leave_one_out, ledger_of_mode, summarise_loo
from gr_core.roar import DEFAULT_METHODS
from gr_core.runs import RunExistsError, load_run, load_run_with_dataset, save_run
from gr_core.training import train

logger = logging.getLogger("gr_core")

SETTING_HELP = {
    "model": "scoring function",
    "dim": "embedding dimension (ComplEx stores 2 * dim reals per row)",
    "epochs": "passes over the training triples",
    "batch_size": "training triples per optimizer step",
    "optimizer": "update rule",
    "learning_rate": "step size",
    "loss": "softmax over all entities, softmax over fixed negatives, or sigmoid BCE",
    "num_negatives": "fixed negatives per training triple (sampled-softmax, bce)",
    "init": "initial weights: uniform in +-scale or normal with std scale",
    "init_scale": "scale of the initial weights",
    "constraint": "projection of entity rows after every step",
    "max_norm": "largest entity row norm for --constraint max-norm",
    "ledger": "rollback ledger: gradient attribution, the paper's row deltas, or off",
    "seed": "seed of every random draw (weights, negatives, batch order)",
    "eval_every": "validation MRR every N epochs (0: never)",
    "early_stopping_patience": "stop after N validation checks without gain (0: never)",
}
METAVARS = {int: "N", float: "X"}
EXAMPLES = """examples:
  python -m gr_core train --dataset nations --model distmult --out runs/nations-distmult
  python -m gr_core train --preset paper --model complex --out runs/paper-complex
  python -m gr_core train --dataset /data/my-graph --epochs 100 --eval-every 5 \\
      --early-stopping-patience 3 --out runs/my-graph
"""
CHOICES = {
    "model": ("distmult", "complex"),
    "optimizer": settings.OPTIMIZERS,
    "loss": settings.LOSSES,
    "constraint": settings.CONSTRAINTS,
    "ledger": settings.LEDGER_MODES,
    "init": settings.INITS,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gr_core",
        description="Train knowledge-graph embeddings with a gradient-rollback ledger.",
    )
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING"))
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    datasets = commands.add_parser(
        "datasets",
        help="list the built-in data sets, and the external ones in the data folder, with sizes",
    )
    _add_data_dir_argument(datasets)

    info = commands.add_parser("info", help="show a run's settings, metrics and files")
    info.add_argument("run", type=Path, help="run folder")
    info.add_argument("--json", action="store_true", help="print config and metrics as JSON")

    _add_train_parser(commands)
    _add_explain_parser(commands)
    _add_evaluate_parser(commands)
    loo = commands.add_parser(
        "loo",
        help="exact leave-one-out: retrain once per neighbour, score GR against the truth",
        description="For every test query (or the first N), retrain once without each "
        "neighbour of the "
        "filtered top-1 prediction and compare GR, first-order GR and a random ranking with "
        "the true drops (Spearman rho, top-1, top-10 overlap), with two noise floors: "
        "retraining the same data with other seeds, and with other batch orders.",
    )
    loo.add_argument("--run", type=Path, required=True, help="run folder")
    loo.add_argument(
        "--queries",
        type=int,
        metavar="N",
        help="only the first N test triples' queries (default: every test triple)",
    )
    loo.add_argument(
        "--orders",
        type=int,
        default=1,
        metavar="R",
        help="average each true drop over R batch orders to shrink retraining noise "
        "(R times the retrainings; default: 1)",
    )
    loo.add_argument(
        "--compare-ledger",
        choices=("gradient", "paper"),
        help="also score GR with this ledger mode, recorded by training the run's setup again",
    )
    loo.add_argument("--out", type=Path, required=True, help="JSON file for the results")
    loo.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    figure = commands.add_parser(
        "figure",
        help="draw GR-1's predicted against retrained probability (the paper's Figure 2)",
        description="One scatter panel per evaluation folder: the probability GR predicts "
        "after removing the top triple against the probability after retraining without it.",
    )
    figure.add_argument("evaluations", type=Path, nargs="+", help="evaluation folders")
    figure.add_argument("--titles", nargs="+", help="panel titles (default: folder names)")
    figure.add_argument("--out", type=Path, required=True, help="HTML file (works offline)")
    figure.add_argument("--png", type=Path, help="also a PNG, drawn by /usr/bin/chromium")
    return parser


def _add_evaluate_parser(commands) -> None:
    evaluate = commands.add_parser(
        "evaluate",
        help="RemOve And Retrain: PD%% and TC%% of GR against random neighbours",
        description="Explain the filtered top-1 prediction of test queries, retrain without "
        "each method's triples, and report how often the probability dropped (PD%%) and "
        "the top-1 changed (TC%%). Resumes an interrupted evaluation in --out.",
    )
    evaluate.add_argument("--run", type=Path, required=True, help="run folder")
    evaluate.add_argument("--out", type=Path, required=True, help="evaluation folder")
    evaluate.add_argument(
        "--queries",
        type=int,
        default=None,
        metavar="N",
        help="N random test triples (default: the whole test set)",
    )
    evaluate.add_argument(
        "--methods",
        nargs="+",
        default=list(DEFAULT_METHODS),
        metavar="METHOD",
        help=f"GR-k, NH-k, GR-ALL, NH-ALL, GR-O-k, FO-k (default: {' '.join(DEFAULT_METHODS)})",
    )
    evaluate.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the query sample and the random baselines (default: 0)",
    )
    evaluate.add_argument(
        "--batch-queries",
        type=int,
        default=200,
        metavar="N",
        help="queries retrained together; finished batches survive an interruption (default: 200)",
    )
    evaluate.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _add_explain_parser(commands) -> None:
    explain = commands.add_parser(
        "explain",
        help="explain a prediction of a run by gradient rollback",
        description="Rank the training triples that made the run predict a tail for "
        "(head, relation, ?). Names may be keys as in the data files or readable labels.",
    )
    explain.add_argument("--run", type=Path, required=True, help="run folder")
    explain.add_argument("--head", required=True, help="the query's head entity")
    explain.add_argument("--relation", required=True, help="the query's relation")
    explain.add_argument("--tail", help="tail to explain (default: the filtered top-1)")
    explain.add_argument("--k", type=int, default=10, help="how many triples (default: 10)")
    explain.add_argument(
        "--method", default="gr", choices=METHODS,
        help="gr: GR-k; gr-o: only triples with the predicted tail; first-order: "
        "gradient . ledger; all-positive: GR-ALL (default: gr)",
    )  # fmt: skip
    explain.add_argument("--json", action="store_true", help="print one JSON object")


def _add_train_parser(commands) -> None:
    train_parser = commands.add_parser(
        "train",
        help="train a model and write a run folder",
        description="Train a model with the rollback ledger and write a run folder. "
        "Settings start from --preset; every flag below overrides one setting.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train_parser.add_argument(
        "--dataset",
        default="nations",
        help=f"built-in name ({', '.join(BUILTIN_DATASETS)}), external name "
        f"({', '.join(EXTERNAL_NAMES)}; see --data-dir) or a folder with "
        "train.txt, valid.txt, test.txt (default: nations)",
    )
    _add_data_dir_argument(train_parser)
    train_parser.add_argument(
        "--split-seed",
        type=int,
        metavar="N",
        help="seed of the 80/10/10 split of a data set that comes unsplit (ml-100k; default 0)",
    )
    train_parser.add_argument(
        "--preset",
        default="default",
        choices=sorted(settings.PRESETS),
        help="starting settings; 'paper' is the original authors' Nations setup (default: default)",
    )
    train_parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="run folder to write (default: runs/DATASET-MODEL-PRESET)",
    )
    train_parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing run folder"
    )
    train_parser.add_argument(
        "--ledger-dtype",
        default="float32",
        choices=tuple(LEDGER_DTYPES),
        help="dtype of the saved ledger file; training always accumulates in float32 "
        "(float16 and bfloat16 halve the file; default: float32)",
    )
    train_parser.add_argument(
        "--device",
        default="auto",
        help="torch device: cpu, cuda, cuda:1, or auto: a CUDA GPU when torch sees one, "
        "else the CPU (default: auto)",
    )
    train_parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    group = train_parser.add_argument_group("training settings (override the preset)")
    for field in dataclasses.fields(settings.TrainConfig):
        group.add_argument(
            "--" + field.name.replace("_", "-"),
            type=type(field.default),
            choices=CHOICES.get(field.name),
            metavar=METAVARS.get(type(field.default)),
            default=None,
            help=SETTING_HELP[field.name] + f" (preset 'default': {field.default})",
        )


def _add_data_dir_argument(parser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="folder holding the external data sets as DIR/fb15k-237/, DIR/wn18rr/, "
        f"DIR/ml-100k/ (default: the environment variable {DATA_DIR_VARIABLE})",
    )


@contextmanager
def step_progress(hidden: bool) -> Iterator[Callable[[int, int], None]]:
    """Yield an ``on_step(done, total)`` callback that drives one progress bar.

    A count that goes back (a new batch of an evaluation) starts the bar again.
    """
    with tqdm(total=1, unit="step", disable=hidden, dynamic_ncols=True) as bar:

        def on_step(done: int, total: int) -> None:
            if done < bar.n:
                bar.reset()
            bar.total = total
            bar.update(done - bar.n)

        yield on_step


def command_datasets(args) -> int:
    print(
        f"{'name':<10} {'entities':>9} {'relations':>9} {'train':>8} {'valid':>7} {'test':>7} "
        f"{'dropped':>7}"
    )
    for name in BUILTIN_DATASETS:
        _print_dataset_row(name, load_dataset(name))

    root, origin = resolve_data_dir(args.data_dir)
    if root is None:
        print(
            f"external data sets ({', '.join(EXTERNAL_NAMES)}): name their folder with "
            f"--data-dir DIR or {DATA_DIR_VARIABLE} to list them"
        )
        return 0
    named = "" if origin == "given" else f" (named by {DATA_DIR_VARIABLE})"
    if not root.is_dir():
        print(f"external data sets: none, the data folder {root}{named} does not exist")
        return 0
    missing = []
    for name in EXTERNAL_NAMES:
        try:
            with warnings.catch_warnings():  # the dropped column says it
                warnings.simplefilter("ignore", DatasetWarning)
                _print_dataset_row(name, load_dataset(name, data_dir=root))
        except GRError as error:
            missing.append((name, error))
    for name, error in missing:
        print(f"\n{name} is not available in {root}{named}: {error}")
    return 0


def _print_dataset_row(name: str, dataset) -> None:
    summary, dropped = dataset.summary(), sum(dataset.report.dropped.values())
    print(
        f"{name:<10} {summary['entities']:>9,} {summary['relations']:>9,} "
        f"{summary['train']:>8,} {summary['valid']:>7,} {summary['test']:>7,} {dropped:>7,}"
    )


def command_train(args) -> int:
    overrides = {
        field.name: getattr(args, field.name)
        for field in dataclasses.fields(settings.TrainConfig)
        if getattr(args, field.name) is not None
    }
    config = settings.preset(args.preset).replace(**overrides)
    dataset = load_dataset(args.dataset, data_dir=args.data_dir, split_seed=args.split_seed)
    out = args.out or Path("runs") / f"{dataset.name}-{config.model}-{args.preset}"
    if out.exists() and not args.overwrite:
        raise RunExistsError(f"run folder {out} already exists; pass --overwrite or another --out")
    device = _resolve_device(args.device)

    with step_progress(args.no_progress) as on_step:
        result = train(dataset, config, device=device, on_step=on_step)
    path = _save_trained(out, dataset, config, result, args)

    test = result.metrics["test"]
    print(f"wrote {path}  ({result.seconds:.1f} s, {result.epochs_run} epochs)")
    print(
        f"test  mrr {test['mrr']:.3f}  hits@1 {test['hits@1']:.3f}  "
        f"hits@3 {test['hits@3']:.3f}  hits@10 {test['hits@10']:.3f}"
    )
    return 0


def _save_trained(out: Path, dataset, config, result, args) -> Path:
    """Save the run; when the ledger overflows the asked dtype, keep it in float32.

    The training is not thrown away over the file's dtype, and float32 loses
    nothing (bfloat16 would keep the range but lose more precision than asked).
    """
    try:
        return save_run(
            out, dataset, config, result, overwrite=args.overwrite, ledger_dtype=args.ledger_dtype
        )
    except LedgerPrecisionError as error:
        print(f"warning: {error}; writing the ledger as float32 instead", file=sys.stderr)
        return save_run(out, dataset, config, result, overwrite=args.overwrite)


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise GRError(f"device {name!r} asked for, but torch sees no CUDA GPU; use --device cpu")
    return device


def command_info(args) -> int:
    run = load_run(args.run)
    if args.json:
        print(json.dumps({"config": run.config, "metrics": run.metrics}, indent=2))
        return 0
    dataset, training = run.config["dataset"], run.config["training"]
    print(f"run       {run.path}")
    print(
        f"data set  {dataset['name']} ({dataset['entities']} entities, "
        f"{dataset['relations']} relations, {dataset['train']} train triples)"
    )
    print(f"          {dataset['content_hash']}")
    print(f"model     {run.model.name}, width {run.model.width}")
    print("settings  " + ", ".join(f"{k}={v}" for k, v in training.items()))
    if run.ledger is None:
        print("ledger    off")
    else:
        megabytes = run.ledger.nbytes / 2**20
        dtype = str(run.ledger.dtype).removeprefix("torch.")
        print(f"ledger    {run.config['ledger']['mode']}, {dtype}, {megabytes:.1f} MiB")
    result = run.config.get("result", {})
    print(
        f"trained   {result.get('epochs_run')} epochs, kept epoch "
        f"{result.get('kept_epoch')}, {result.get('seconds')} s"
    )
    for split in ("valid", "test"):
        values = "  ".join(f"{k} {v:.3f}" for k, v in run.metrics.get(split, {}).items())
        print(f"{split:<9} {values}")
    return 0


def command_explain(args) -> int:
    run, dataset = load_run_with_dataset(args.run)
    explanation = Explainer(run, dataset).explain(
        args.head, args.relation, args.tail, method=args.method, k=args.k
    )
    if args.json:
        print(json.dumps(explanation.to_dict(), indent=2, ensure_ascii=False))
        return 0

    e, entity, relation = explanation, dataset.entity_display, dataset.relation_display
    print(f"query       ({entity[e.head]}, {relation[e.relation]}, ?)")
    print(f"prediction  {entity[e.tail]}  Pr {e.probability:.4f}")
    print(f"method      {e.method}: {len(e.rows)} of {e.num_neighbours} candidate triples")
    print(f"{'rank':>4} {'influence':>10} {'Pr after':>9}  {'category':<16} triple")
    for row in e.rows:
        print(
            f"{row.rank:>4} {row.influence:>10.4f} {row.probability_after:>9.4f}  "
            f"{row.category:<16} ({entity[row.head]}, {relation[row.relation]}, "
            f"{entity[row.tail]})"
        )
    for path in e.paths:
        sides = f"{list(path.head_side)} then {list(path.tail_side)}"
        print(f"path via {entity[path.via]}: ranks {sides}")
    return 0


def command_evaluate(args) -> int:
    with step_progress(args.no_progress) as on_step:
        summary = run_evaluation(
            args.run, args.out, queries=args.queries, methods=args.methods, seed=args.seed,
            batch_queries=args.batch_queries, on_step=on_step,
        )  # fmt: skip
    print(f"wrote {args.out}")
    print(f"{'method':<10} {'PD %':>6} {'TC %':>6} {'n':>5} {'removed':>8}")
    for method, values in summary.items():
        print(f"{method:<10} {values['pd']:>6.1f} {values['tc']:>6.1f} {values['n']:>5} "
              f"{values['removed']:>8.1f}")  # fmt: skip
    return 0


def command_loo(args) -> int:
    run, dataset = load_run_with_dataset(args.run)
    queries = dataset.test[: args.queries, :2]
    ledgers = {}
    with step_progress(args.no_progress) as on_step:
        if args.compare_ledger:
            ledgers[args.compare_ledger] = ledger_of_mode(run, dataset, args.compare_ledger,
                                                          on_step)  # fmt: skip
        records = leave_one_out(run, dataset, Explainer(run, dataset), queries,
                                ledgers=ledgers, orders=args.orders, on_step=on_step)  # fmt: skip
    summary = summarise_loo(records)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    staging = args.out.with_name(args.out.name + ".tmp")
    staging.write_text(json.dumps({"summary": summary, "queries": records}, indent=2) + "\n")
    staging.replace(args.out)

    print(f"wrote {args.out}: {summary['queries']} queries, {summary['neighbours']} neighbours")
    for kind in ("seed", "order"):
        floor, above = summary[f"noise_floor_{kind}"], summary[f"share_above_noise_{kind}"]
        print(f"noise floor ({kind}): {floor:.4f}, {100 * above:.0f}% of neighbours above it")
    if "share_significant" in summary:
        share = 100 * summary["share_significant"]
        print(f"true drops averaged over {args.orders} batch orders: {share:.0f}% differ "
              "from 0 by over 2 standard errors")  # fmt: skip
    print(f"{'estimate':<12} {'spearman':>9} {'top-1':>6} {'top-1 in 10':>12} {'top-10':>7}")
    for name in summary:
        if isinstance(summary[name], dict):
            values = summary[name]
            print(f"{name:<12} {values['spearman']:>9.3f} {values['top1']:>6.2f} "
                  f"{values['top1_in_top10']:>12.2f} {values['top10']:>7.2f}")  # fmt: skip
    return 0


def command_figure(args) -> int:
    if args.titles and len(args.titles) != len(args.evaluations):
        raise GRError(f"{len(args.titles)} titles for {len(args.evaluations)} evaluations")
    missing = [str(f) for f in args.evaluations if not (f / "approximation.json").is_file()]
    if missing:
        raise GRError(f"not evaluation folders (no approximation.json): {', '.join(missing)}")
    figure = approximation_figure(args.evaluations, args.titles)
    figure.write_html(args.out, include_plotlyjs=True, full_html=True)
    print(f"wrote {args.out}")
    if args.png:
        html_to_png(args.out, args.png, figure.layout.width, figure.layout.height)
        print(f"wrote {args.png}")
    return 0


class _TqdmHandler(logging.Handler):
    """Write log lines above an active progress bar instead of through it."""

    def emit(self, record):
        tqdm.write(self.format(record), file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = _TqdmHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    for name in ("gr_core", "py.warnings"):  # py.warnings: a data set's DatasetWarning
        logging.getLogger(name).handlers[:] = [handler]
    logger.setLevel(args.log_level)
    logging.captureWarnings(True)

    commands = {
        "datasets": command_datasets,
        "train": command_train,
        "info": command_info,
        "explain": command_explain,
        "evaluate": command_evaluate,
        "figure": command_figure,
        "loo": command_loo,
    }
    try:
        with warnings.catch_warnings():
            if logger.getEffectiveLevel() <= logging.INFO:  # the log already says it once
                warnings.simplefilter("ignore", DatasetWarning)
            return commands[args.command](args)
    except GRError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; no run folder was written", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (e.g. `| head`): not an error
        sys.stderr.close()
        return 0
