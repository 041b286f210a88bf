"""Names of entities and relations: keys, readable labels and the names shown.

A data set names each item by its key (the text in its files) and may give it a
readable label (``entity_names.tsv``). Labels need not be unique: WordNet gives
one lemma to many synsets (WN18RR: "run" names 33 of them), so where a label is
shared the name shown is the label followed by the key, ``run (07460104)``.
Any of the three finds the item back, and a search finds items by part of a name.
"""

from __future__ import annotations

from gr_core.errors import UnknownNameError


class AmbiguousNameError(UnknownNameError):
    """A readable label names more than one entity or relation; the key must be used."""

    def __init__(self, kind: str, name: str, keys: list[str]):
        super().__init__(kind, name, keys)
        shown = ", ".join(repr(k) for k in keys[:5])
        more = f" and {len(keys) - 5} more" if len(keys) > 5 else ""
        example = f"{name} ({keys[0]})"
        self.args = (
            f"{kind} label {name!r} is shared by {shown}{more}; use the key, or the label "
            f"with its key as shown, e.g. {example!r}",
        )
        self.close_matches = list(keys)


def distinct_labels(keys: tuple[str, ...], labels: tuple[str, ...]) -> tuple[str, ...]:
    """Return the labels, each that names several items followed by its item's key."""
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    return tuple(
        label if label == key or counts[label] == 1 else f"{label} ({key})"
        for key, label in zip(keys, labels, strict=True)
    )


class Names:
    """Map keys, then readable labels, then shown names to ids; search by part of a name."""

    def __init__(self, kind: str, keys: tuple[str, ...], labels: tuple[str, ...]):
        self.kind = kind
        self.keys = keys
        self.shown = distinct_labels(keys, labels)
        self.key_ids = {key: i for i, key in enumerate(keys)}
        self.label_ids: dict[str, list[int]] = {}
        for i, label in enumerate(labels):
            self.label_ids.setdefault(label, []).append(i)
        # Only the names that differ from the label: those of a shared label.
        self.shown_ids = {name: i for i, name in enumerate(self.shown) if name != labels[i]}
        pairs = zip(self.shown, keys, strict=True)
        self._folded = [(name.casefold(), key.casefold()) for name, key in pairs]

    def find(self, name: str) -> int:
        """Return the id for a key, or a label that names exactly one item, or a shown name."""
        if name in self.key_ids:
            return self.key_ids[name]
        ids = self.label_ids.get(name)
        if ids is None and name in self.shown_ids:
            return self.shown_ids[name]
        if ids is None:
            known = list(dict.fromkeys([*self.keys, *self.label_ids, *self.shown_ids]))
            raise UnknownNameError(self.kind, name, known)
        if len(ids) > 1:
            raise AmbiguousNameError(self.kind, name, [self.keys[i] for i in ids])
        return ids[0]

    def search(self, text: str) -> list[int]:
        """Return the ids whose shown name or key contains ``text``, best first.

        Case is ignored. A name equal to the text comes first, then names that
        start with it, then the rest; shorter names first within each.
        """
        needle = text.casefold()
        ranked = []
        for i, (name, key) in enumerate(self._folded):
            if needle in name or needle in key:
                place = 0 if name == needle else 1 if name.startswith(needle) else 2
                ranked.append((place, len(name), name, i))
        return [i for *_, i in sorted(ranked)]
