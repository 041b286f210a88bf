"""Explanation speed: vectorized rollback against the reference loop, and FB15k-237 latency.

Part 1 trains the default preset on Nations and UMLS and, for the first test
queries ``(head, relation, filtered top-1 tail)``, times ``rollback_probabilities``
over all neighbours of a query against the obvious loop that clones the model,
subtracts one neighbour's ledger rows and recomputes the probability
(target: a speed-up of at least 50); the vectorized time is the median of
``--repeats`` calls, the loop runs once. The loop runs over at most ``--loop-limit``
neighbours of a query and its time is scaled up per neighbour.

Part 2 times one explanation (neighbour lookup plus rollback over every
neighbour, default chunk size) at FB15k-237 size with random weights and a
random ledger of width 200, for queries with 4,500 to 6,500 neighbours (the
paper's average is about 5,500), against the floor: the bare score matrix and
its ``logsumexp`` for as many rows (targets: at most 1 s, ratio at most 1.5).
The training triples come from ``--fb15k`` when that folder exists; otherwise
random triples with Zipf-like entity and relation frequencies stand in.

Part 3, with ``--run RUN`` (a trained run; an external data set needs
``GR_DATA_DIR``): for its first ``--queries`` test queries, the top 10 by
``top_rollbacks`` (bounds first, exact rollbacks only where a neighbour may
enter the top 10) against rolling back every neighbour and sorting, timed
side by side, with how many neighbours were rolled back and whether both give
the same ten.

    python -m benchmarks.explain_speed [--quick] [--repeats 20] [--queries 5] [--fb15k FOLDER]
                                       [--run RUN [--run-queries 10]]
"""

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch

from benchmarks.ledger_overhead import SHARED_FB15K
from gr_core.config import DEFAULT
from gr_core.data import DatasetWarning, load_dataset
from gr_core.explain import Explainer
from gr_core.influence import default_chunk_size, rollback_probabilities, top_rollbacks
from gr_core.ledger import Ledger
from gr_core.models import DistMult
from gr_core.neighbours import NeighbourhoodIndex
from gr_core.runs import load_run, load_run_with_dataset, save_run
from gr_core.training import train
from tests.test_influence import reference_rollback

# FB15k-237 as the paper counts it; the real training split names 14,505 entities.
FB15K_ENTITIES, FB15K_RELATIONS, FB15K_TRIPLES, FB15K_WIDTH = 14_541, 237, 272_115, 200
NEIGHBOURS_LOW, NEIGHBOURS_HIGH = 4_500, 6_500
CANDIDATE_QUERIES = 2_000  # random training triples searched for a neighbourhood in range
# Exponents of the stand-in's frequencies ~ 1 / rank**s, chosen so that neighbourhood
# sizes spread like FB15k-237's (there: mean about 5,900, median about 4,100).
ENTITY_ZIPF, RELATION_ZIPF = 0.8, 0.7


def timed(function, *args, **kwargs):
    """Call ``function`` once; return ``(seconds, its result)``."""
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - started, result


def first_test_queries(explainer: Explainer, dataset, count: int) -> list[tuple[int, int, int]]:
    """Return ``(head, relation, filtered top-1 tail)`` for the first test triples."""
    queries = []
    for head, relation, _ in dataset.test[:count].tolist():
        top = explainer.predict(head, relation, k=1)
        if top:
            queries.append((head, relation, top[0].tail))
    return queries


def compare_on(name: str, args, generator: torch.Generator) -> None:
    """Train the default preset on ``name`` and print one row of part 1's table."""
    dataset = load_dataset(name)
    result = train(dataset, DEFAULT)
    with tempfile.TemporaryDirectory() as folder:  # explain from a real run folder
        run = load_run(save_run(Path(folder) / name, dataset, DEFAULT, result), dataset=dataset)
    explainer = Explainer(run, dataset)
    model, ledger, triples = run.model, run.ledger, dataset.train

    neighbours = looped = 0
    vectorized_seconds = reference_seconds = max_difference = 0.0
    queries = first_test_queries(explainer, dataset, args.queries)
    for query in queries:
        ids = explainer.index.neighbours(*query)
        timings = []
        for _ in range(args.repeats):
            seconds, after = timed(rollback_probabilities, model, ledger, triples, ids, query)
            timings.append(seconds)
        vectorized_seconds += statistics.median(timings)

        # The loop's cost is linear in the neighbours, so a subsample is scaled up.
        sample = ids
        if len(ids) > args.loop_limit:
            sample = ids[torch.randperm(len(ids), generator=generator)[: args.loop_limit]]
        seconds, reference = timed(reference_rollback, model, ledger, triples, sample, query)
        reference_seconds += seconds * len(ids) / len(sample)
        positions = torch.searchsorted(ids, sample)  # ids are sorted and distinct
        difference = (after[positions] - reference).abs().max()
        max_difference = max(max_difference, float(difference))
        neighbours, looped = neighbours + len(ids), looped + len(sample)

    count = len(queries)
    vectorized_ms, reference_ms = 1e3 * vectorized_seconds / count, 1e3 * reference_seconds / count
    print(
        f"{name:<9} {count:>7} {neighbours / count:>10,.0f} {looped / count:>7,.0f} "
        f"{vectorized_ms:>9.2f} {reference_ms:>11.1f} {reference_ms / vectorized_ms:>8.1f}x "
        f"{max_difference:>9.1e}"
    )


def loop_versus_vectorized(args, generator: torch.Generator) -> None:
    print("\nvectorized rollback against the per-neighbour loop (DistMult, default preset)")
    print(f"per query; the loop runs over at most {args.loop_limit} neighbours, scaled up")
    print(
        f"{'data set':<9} {'queries':>7} {'neighbours':>10} {'looped':>7} {'vector ms':>9} "
        f"{'loop ms':>11} {'speed-up':>9} {'max |diff|':>9}"
    )
    for name in ("nations", "umls"):
        compare_on(name, args, generator)


def zipf_triples(generator: torch.Generator) -> torch.Tensor:
    """Return FB15K_TRIPLES random triples (may repeat) with Zipf-like frequencies: (n, 3)."""

    def draw(count: int, exponent: float) -> torch.Tensor:
        weights = torch.arange(1, count + 1, dtype=torch.float64) ** -exponent
        return torch.multinomial(weights, FB15K_TRIPLES, replacement=True, generator=generator)

    head, tail = draw(FB15K_ENTITIES, ENTITY_ZIPF), draw(FB15K_ENTITIES, ENTITY_ZIPF)
    return torch.stack((head, draw(FB15K_RELATIONS, RELATION_ZIPF), tail), dim=1)


def fb15k_triples(folder: Path, generator: torch.Generator):
    """Return ``(training triples, num_entities, num_relations, where they came from)``."""
    if (folder / "train.txt").is_file():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DatasetWarning)  # unseen valid/test triples
            dataset = load_dataset(folder)
        return dataset.train, dataset.num_entities, dataset.num_relations, str(folder)
    source = f"random Zipf-like triples ({folder} not found)"
    return zipf_triples(generator), FB15K_ENTITIES, FB15K_RELATIONS, source


def pick_queries(index: NeighbourhoodIndex, triples, count: int, generator) -> list[tuple]:
    """Return up to ``count`` training triples with NEIGHBOURS_LOW to _HIGH neighbours."""
    picked = []
    for row in torch.randint(len(triples), (CANDIDATE_QUERIES,), generator=generator).tolist():
        query = tuple(triples[row].tolist())
        if NEIGHBOURS_LOW <= len(index.neighbours(*query)) <= NEIGHBOURS_HIGH:
            picked.append(query)
        if len(picked) == count:
            break
    return picked


def floor_seconds(rows: torch.Tensor, entity: torch.Tensor, chunk_size: int) -> float:
    """Time the scores ``rows @ entity.T`` and their ``logsumexp``, ``chunk_size`` rows at once."""
    started = time.perf_counter()
    for chunk in rows.split(chunk_size):
        torch.logsumexp(chunk @ entity.T, dim=1)
    return time.perf_counter() - started


def fb15k_latency(args, generator: torch.Generator) -> None:
    triples, num_entities, num_relations, source = fb15k_triples(args.fb15k, generator)
    print(f"\none explanation at FB15k-237 size: {source}")
    index_seconds, index = timed(NeighbourhoodIndex, triples, num_entities, num_relations)
    chunk_size = default_chunk_size(num_entities)
    print(
        f"{num_entities:,} entities, {num_relations} relations, {len(triples):,} training "
        f"triples, width {FB15K_WIDTH}\nneighbourhood index built once in {index_seconds:.3f} s; "
        f"default chunks of {chunk_size:,} neighbours"
    )

    # Random weights and ledger: the timing depends on shapes, not on values.
    entity = torch.randn(num_entities, FB15K_WIDTH, generator=generator) * 0.1
    relation = torch.randn(num_relations, FB15K_WIDTH, generator=generator) * 0.1
    model = DistMult(entity, relation)
    ledger = Ledger(torch.randn(len(triples), 3, FB15K_WIDTH, generator=generator) * 1e-3)

    queries = pick_queries(index, triples, args.fb15k_queries, generator)
    if not queries:
        raise SystemExit(
            f"no query with {NEIGHBOURS_LOW:,} to {NEIGHBOURS_HIGH:,} neighbours among "
            f"{CANDIDATE_QUERIES:,} random training triples"
        )
    print(
        f"{'query':<20} {'neighbours':>10} {'lookup ms':>9} {'explain s':>9} "
        f"{'floor s':>8} {'unchunked s':>11} {'ratio':>6}"
    )
    for query in queries:
        # The floor's rows are drawn before timing: it stands for the products alone.
        size = len(index.neighbours(*query))
        rows = torch.randn(size, FB15K_WIDTH, generator=generator)
        lookups, explains, floors, whole_floors = [], [], [], []
        for _ in range(args.repeats_fb15k):  # interleaved, so load drifts hit all three
            started = time.perf_counter()
            ids = index.neighbours(*query)
            looked_up = time.perf_counter()
            rollback_probabilities(model, ledger, triples, ids, query)
            lookups.append(looked_up - started)
            explains.append(time.perf_counter() - started)
            floors.append(floor_seconds(rows, entity, chunk_size))
            whole_floors.append(floor_seconds(rows, entity, size))
        explain, floor = statistics.median(explains), statistics.median(floors)
        print(
            f"{str(query):<20} {size:>10,} {1e3 * statistics.median(lookups):>9.2f} "
            f"{explain:>9.3f} {floor:>8.3f} {statistics.median(whole_floors):>11.3f} "
            f"{explain / floor:>6.2f}"
        )
    print("ratio = explain / floor with the same chunks (targets: explain <= 1 s, ratio <= 1.5)")


def bounded_against_full(args) -> None:
    """Part 3: the top 10 with bounds against every rollback, on a trained run."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetWarning)
        run, dataset = load_run_with_dataset(args.run)
    explainer = Explainer(run, dataset)
    model, ledger, triples = run.model, run.ledger, dataset.train
    print(f"\ntop 10 with bounds against every rollback: {args.run} ({dataset.name})")
    print(
        f"{'query':<22} {'neighbours':>10} {'rolled back':>11} {'bounded s':>9} "
        f"{'full s':>8} {'speed-up':>8} {'same 10':>7}"
    )
    ratios = []
    for query in first_test_queries(explainer, dataset, args.run_queries):
        ids = explainer.index.neighbours(*query)
        bounded, full = [], []
        for _ in range(args.repeats_run):  # interleaved, so load drifts hit both
            seconds, (positions, after) = timed(top_rollbacks, model, ledger, triples, ids,
                                                query, 10)  # fmt: skip
            bounded.append(seconds)
            seconds, every = timed(rollback_probabilities, model, ledger, triples, ids, query)
            full.append(seconds)
        top = positions[torch.sort(after, stable=True).indices[:10]]
        same = top.tolist() == torch.sort(every, stable=True).indices[:10].tolist()
        bounded_s, full_s = statistics.median(bounded), statistics.median(full)
        ratios.append(full_s / bounded_s)
        print(
            f"{str(query):<22} {len(ids):>10,} {len(positions):>11,} {bounded_s:>9.3f} "
            f"{full_s:>8.3f} {full_s / bounded_s:>7.2f}x {'yes' if same else 'NO':>7}"
        )
    if ratios:
        print(f"median speed-up {statistics.median(ratios):.2f}x over {len(ratios)} queries")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="2 test queries, 5 repeats, loop over at most 100 neighbours, 1 FB15k query",
    )
    parser.add_argument("--repeats", type=int, default=20, help="vectorized repeats, part 1")
    parser.add_argument("--queries", type=int, default=5, help="test queries per data set")
    parser.add_argument("--loop-limit", type=int, default=1_000)
    parser.add_argument("--fb15k", type=Path, default=SHARED_FB15K)
    parser.add_argument("--fb15k-queries", type=int, default=5)
    parser.add_argument("--repeats-fb15k", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run", type=Path, help="a trained run for part 3 (else skipped)")
    parser.add_argument("--run-queries", type=int, default=10, help="test queries, part 3")
    parser.add_argument("--repeats-run", type=int, default=3)
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.queries, args.loop_limit = 5, 2, 100
        args.fb15k_queries, args.repeats_fb15k = 1, 3

    generator = torch.Generator().manual_seed(args.seed)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    loop_versus_vectorized(args, generator)
    fb15k_latency(args, generator)
    if args.run is not None:
        bounded_against_full(args)


if __name__ == "__main__":
    main()
