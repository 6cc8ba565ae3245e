"""Synthetic customer-support emails for the email router (introduced in lesson 04).

The emails are *synthetic*: each one is composed from hand-written parts (an
opening, one or more problem statements, details such as order numbers, amounts,
dates, products and carriers, a request, a closing and a signature), then roughened
with typos, odd casing, emoji and quoted earlier replies. Every problem statement
belongs to one queue of :data:`QUEUES`; a *mixed* email has statements from two or
three queues and records the true mixture (e.g. 0.6 refund / 0.3 billing / 0.1 fraud).

Two styles:

* ``"archive"``: the small labelled archive a team already has. It only uses the
  *archive* phrasings of each problem.
* ``"traffic"``: the large stream of historic traffic. Half of its problem
  statements are *paraphrases* the archive never shows ("money went out twice"
  instead of "charged twice"), so a bag-of-words trained on the archive alone
  misses them, while a pretrained sentence encoder still sees what they mean.

Also here: :func:`edge_cases` (a fixed, tagged suite of hard emails) and
:func:`load_email_csv` (bring your own labelled emails), and for the router tool
:func:`csv_rows`, :func:`load_labelled_csv` (labels are any strings) and :func:`load_traffic_csv`.
"""
from __future__ import annotations

import codecs
import contextlib
import csv
import io
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np

#: The router's queues, in label order: label ``i`` is ``QUEUES[i]``.
QUEUES: tuple[str, ...] = ("billing", "delivery", "refund", "fraud", "account", "other")

STYLES = ("archive", "traffic")

# The phrase tables (problem statements per queue, subjects, requests, openings, ...) and the
# style settings are data, not code: they live in email_phrases.json beside this module.
_DATA_DIR = Path(__file__).resolve().parent


def _read_json(name: str) -> dict:
    return json.loads((_DATA_DIR / name).read_text(encoding="utf-8"))


_PHRASES = _read_json("email_phrases.json")
_ARCHIVE: dict[str, list[str]] = _PHRASES["archive"]  # the phrasings the labelled archive uses
_PARAPHRASE: dict[str, list[str]] = _PHRASES["paraphrase"]  # only historic traffic uses these
_MIXES = [(m["queues"], m["weights"]) for m in _PHRASES["mixes"]]  # the first queue is the label
_STYLE_SETTINGS: dict[str, dict] = _PHRASES["styles"]


@dataclass(frozen=True)
class Email:
    """One synthetic customer email with its queue (introduced in lesson 04).

    ``mixture`` maps queue names to weights summing to 1 (one entry for a
    single-intent email); ``queue`` is the mixture's largest entry. ``paraphrased``
    says the main problem statement is one the labelled archive never shows.
    """

    subject: str
    body: str
    queue: str
    mixture: dict = field(default_factory=dict)
    paraphrased: bool = False

    @property
    def text(self) -> str:
        """Subject and body as one string: what a router reads."""
        return f"{self.subject}\n\n{self.body}"

    @property
    def label(self) -> int:
        """The queue as an int label in ``[0, len(QUEUES))``."""
        return QUEUES.index(self.queue)


#: Edge-case tags that need a person, whatever the queue: neither model was trained to flag them (lesson 05).
ESCALATION_TAGS: tuple[str, ...] = ("legal_threat", "vulnerable_customer", "bereavement")


@dataclass(frozen=True)
class EdgeCase:
    """A hard email of the edge-case suite, with its tag and expected queue (introduced in lesson 04)."""

    tag: str
    text: str
    queue: str
    note: str = ""

    @property
    def label(self) -> int:
        """The expected queue as an int label."""
        return QUEUES.index(self.queue)

    @property
    def needs_person(self) -> bool:
        """True for the escalation tags (:data:`ESCALATION_TAGS`): routing alone is not enough (lesson 05)."""
        return self.tag in ESCALATION_TAGS


def _fill(template: str, rng: random.Random, **extra: str) -> str:
    currency = rng.choice(["\u00a3", "$", "\u20ac"])
    values = {
        "order": rng.choice(["#", "", "no. ", "A"]) + str(rng.randint(100000, 9999999)),
        "amount": f"{currency}{rng.randint(3, 400)}.{rng.choice(['00', '99', '49', '50', '95'])}",
        "date": rng.choice([f"{rng.randint(1, 28)} {rng.choice(_PHRASES['months'])}",
                            f"{rng.randint(1, 28)}/{rng.randint(1, 12)}",
                            rng.choice(["last Tuesday", "yesterday", "Monday", "the weekend", "last week"])]),
        "product": rng.choice(_PHRASES["products"]),
        "carrier": rng.choice(_PHRASES["carriers"]),
        "last4": f"{rng.randint(0, 9999):04d}",
        "plan": rng.choice(_PHRASES["plans"]),
    }
    return template.format(**values, **extra)


def _typo(word: str, rng: random.Random) -> str:
    if len(word) < 4 or not word.isalpha():
        return word
    i = rng.randrange(1, len(word) - 1)
    kind = rng.random()
    if kind < 0.4:  # swap two letters
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    if kind < 0.7:  # drop a letter
        return word[:i] + word[i + 1:]
    return word[:i] + word[i] + word[i:]  # double a letter


def _roughen(text: str, rate: float, rng: random.Random) -> str:
    if rate <= 0:
        return text
    return " ".join(_typo(w, rng) if rng.random() < rate else w for w in text.split(" "))


def _statement(queue: str, paraphrase: bool, rng: random.Random) -> str:
    pool = _PARAPHRASE[queue] if paraphrase else _ARCHIVE[queue]
    return _fill(rng.choice(pool), rng)


def _compose(queue: str, style: str, rng: random.Random) -> Email:
    s = _STYLE_SETTINGS[style]
    paraphrased = rng.random() < s["paraphrase"]
    if rng.random() < s["mixed"]:
        candidates = [m for m in _MIXES if m[0][0] == queue]
        queues, weights = rng.choice(candidates) if candidates else ((queue,), (1.0,))
    else:
        queues, weights = (queue,), (1.0,)
    mixture = dict(zip(queues, weights))

    parts = [_statement(queue, paraphrased, rng)]
    if rng.random() < 0.35:
        parts.append(_fill(rng.choice(_PHRASES["details"]), rng))
    for q, w in zip(queues[1:], weights[1:]):
        side = _statement(q, rng.random() < s["paraphrase"], rng)
        if w < 0.1:  # a faint hint: only half a sentence of the minor queue
            side = side.split(",")[0].rstrip(".?!") + "?"
        parts.append(rng.choice(_PHRASES["linkers"]) + side[0].lower() + side[1:])
    if rng.random() < 0.25:
        parts.insert(0, _fill(rng.choice(_PHRASES["details"]), rng))
    if paraphrased or rng.random() < 0.5:
        request = rng.choice(_PHRASES["generic_requests"])
    else:
        request = rng.choice(_PHRASES["requests"][queue])
    if request:
        parts.append(request)
    if rng.random() < s["emoji"]:
        parts[-1] = parts[-1] + " " + rng.choice(_PHRASES["emoji"][queue])
    body = _roughen(" ".join(parts), s["typo"], rng)

    opening, closing = rng.choice(_PHRASES["openings"]), rng.choice(_PHRASES["closings"])
    name, signoff = rng.choice(_PHRASES["names"]), rng.choice(_PHRASES["signoffs"])
    lines = [opening, body, (closing + "," if closing else "") + ("\n" + name if rng.random() < 0.8 else "")]
    if signoff and rng.random() < 0.3:
        lines.append(signoff)
    body_text = "\n\n".join(line.strip() for line in lines if line.strip())
    if rng.random() < s["quote"]:
        body_text += (f"\n\n> On {_fill('{date}', rng)}, Support <help@shop.example> wrote:\n> "
                      + rng.choice(_PHRASES["quoted"]))
    if rng.random() < s["lower"]:
        body_text = body_text.lower()

    if rng.random() < s["generic_subject"] or paraphrased:
        subject = _fill(rng.choice(_PHRASES["generic_subjects"]), rng)
    else:
        subject = _fill(rng.choice(_PHRASES["subjects"][queue]), rng)
    if rng.random() < 0.05:
        subject = subject.upper()
    return Email(subject=subject, body=body_text, queue=queue, mixture=mixture, paraphrased=paraphrased)


def generate_emails(n: int, seed: int = 0, style: str = "traffic") -> list[Email]:
    """Generate ``n`` synthetic customer emails, balanced over :data:`QUEUES` (introduced in lesson 04).

    Args:
        n: how many emails (each queue gets ``n // 6`` or one more).
        seed: the same ``(n, seed, style)`` always gives the same emails.
        style: ``"archive"`` (the small labelled archive: archive phrasings only) or
            ``"traffic"`` (historic traffic: half paraphrases, more mixed emails and noise).

    Returns:
        A list of :class:`Email`; ``[e.text for e in emails]`` and ``[e.label for e in emails]``
        give texts and int labels (or use :func:`texts_and_labels`).
    """
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    rng = random.Random(f"emails-{style}-{seed}")
    queues = [QUEUES[i % len(QUEUES)] for i in range(int(n))]
    rng.shuffle(queues)
    return [_compose(q, style, rng) for q in queues]


def texts_and_labels(emails: Sequence[Email | EdgeCase]) -> tuple[list[str], np.ndarray]:
    """Split emails into a list of texts and an int64 array of labels, shape ``(n,)`` (introduced in lesson 04)."""
    return [e.text for e in emails], np.array([e.label for e in emails], dtype=np.int64)


def mixture_matrix(emails: Sequence[Email]) -> np.ndarray:
    """The true mixtures as a ``(n, len(QUEUES))`` array whose rows sum to 1 (introduced in lesson 04)."""
    out = np.zeros((len(emails), len(QUEUES)))
    for i, e in enumerate(emails):
        for q, w in e.mixture.items():
            out[i, QUEUES.index(q)] = w
    return out


def edge_cases() -> list[EdgeCase]:
    """A fixed, tagged suite of hard emails with the expected queue (introduced in lesson 04, grown in lesson 05).

    Tags: ``long_policy``, ``legal_threat``, ``vulnerable_customer``, ``bereavement``,
    ``sarcasm``, ``non_english_es``, ``non_english_de``, ``non_english_fr``, ``one_word``,
    ``multi_intent``, ``out_of_scope``, each with 20 or more emails, so that a per-tag accuracy
    has an interval narrow enough to say something. Hand-written cases come first, then the
    composed ones (frames around the generator's problem statements, see
    ``email_edge_cases.json``); the suite is drawn from one fixed seed and never changes.
    """
    suite = _read_json("email_edge_cases.json")
    rng = random.Random("edge-cases")
    cases = []
    for case in suite["cases"]:
        if "middle" in case:  # a long policy complaint with one sentence that says what it is about
            text = _fill(suite["long_policy"].replace("{middle}", case["middle"]), rng)
        else:
            text = case["text"]
        cases.append(EdgeCase(case["tag"], text, case["queue"], case.get("note", "")))
    for recipe in suite["composed"]:
        for i in range(recipe["count"]):
            queue = recipe["queues"][i % len(recipe["queues"])]
            cases.append(EdgeCase(recipe["tag"], _compose_edge(suite, recipe, queue, rng), queue, recipe["note"]))
    return cases


def _problem(queue: str, rng: random.Random) -> str:
    """One of the generator's problem statements of ``queue``, archive or paraphrase wording, slots unfilled."""
    return rng.choice(_PARAPHRASE[queue] if rng.random() < 0.5 else _ARCHIVE[queue])


def _compose_edge(suite: dict, recipe: dict, queue: str, rng: random.Random) -> str:
    """One composed edge case: a frame, its slots drawn in the recipe's order, then the usual details filled."""
    frame = rng.choice(recipe["frames"])
    text = suite[frame[1:]].replace("{middle}", "{problem}") if frame.startswith("$") else frame
    problem = _problem(queue, rng)
    other = _problem(rng.choice([q for q in QUEUES if q not in (queue, "other")]), rng)
    parts = {"problem": problem, "problem_lc": problem[0].lower() + problem[1:],
             "other_problem": other, "other_problem_lc": other[0].lower() + other[1:]}
    for name, options in recipe["slots"].items():
        parts[name] = rng.choice(options[queue] if isinstance(options, dict) else options)
    for name, value in parts.items():  # in order: a slot's value may hold a later slot ({relative})
        text = text.replace("{" + name + "}", value)
    return _fill(text, rng)


def _decode_csv(path: Path) -> str:
    """The file's text: UTF-16 when it starts with a byte-order mark, else UTF-8; never a guess."""
    data = path.read_bytes()
    utf16 = data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    if not utf16 and b"\x00" in data:
        raise ValueError(f"{path.name} holds NUL bytes: it looks like UTF-16 without a byte-order mark; "
                         "save it as UTF-8 (in Excel: 'CSV UTF-8') and load it again")
    encoding = "utf-16" if utf16 else "utf-8-sig"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as err:
        before = data[:err.start].decode(encoding, "replace")
        line = before.count("\n") + 1
        rows = sum(1 for row in csv.reader(io.StringIO(before, newline="")) if row)  # the header is one
        row = rows if before.endswith("\n") or not before else rows - 1
        raise ValueError(f"{path.name} is not {'UTF-16' if utf16 else 'UTF-8'}: byte 0x{data[err.start]:02x} "
                         f"at file line {line} (data row {max(row, 0)}; a Latin-1 or Windows-1252 export?): save it "
                         "as UTF-8 (in Excel: 'CSV UTF-8') and load it again") from None


@contextlib.contextmanager
def _csv_field_limit(limit: int):
    """Let csv read fields up to ``limit`` characters (its default is 128 KB), then restore the old limit."""
    before = csv.field_size_limit(min(limit, 2 ** 31 - 1))
    try:
        yield
    finally:
        csv.field_size_limit(before)


def _column(header: list[str], column: str, name: str) -> int:
    """The index of ``column`` in the header; missing or repeated is a ``ValueError``."""
    count = header.count(column)
    if count == 0:
        raise ValueError(f"{name}: no column {column!r}; the header has {header}")
    if count > 1:
        raise ValueError(f"{name}: column {column!r} appears {count} times in the header {header}: "
                         "rename the copies so it is clear which one to read")
    return header.index(column)


def _label(raw: str, queues: Sequence[str], where: str) -> int:
    """A label written as a queue name (any case) or as an int in ``[0, len(queues))``."""
    lookup = {q.lower(): i for i, q in enumerate(queues)}
    if raw.lower() in lookup:
        return lookup[raw.lower()]
    if raw.isascii() and raw.isdigit() and int(raw) < len(queues):
        return int(raw)
    raise ValueError(f"{where}: unknown label {raw!r}; expected one of {list(queues)} "
                     f"or an int in [0, {len(queues)})")


def csv_rows(path: str | Path, text_column: str = "text",
             label_column: Optional[str] = None) -> tuple[list[str], Iterator[tuple[list[str], str, str, str]]]:
    """The header and a lazy iterator over the data rows of a CSV file, checked row by row.

    The checks of :func:`load_email_csv` (which reads through it): UTF-8 (or UTF-16 with a byte-order
    mark), a header naming ``text_column`` (and ``label_column`` when given) once, no row with more
    fields than the header (an unquoted comma), no empty text, no empty label. Blank lines are skipped.
    The file is decoded whole, the rows are parsed as they are asked for; fields of any length are read.

    Returns:
        ``(header, rows)``; each row is ``(fields, text, label, where)``: the row's fields padded with ``""`` to
        the header's length, the stripped text, the stripped label (``""`` without ``label_column``) and where
        it is (``"mail.csv, row 3 (file line 4)"``, for messages).
    Raises:
        ValueError: the message names the file, the data row (1 = first row after the header) and its file line.
        FileNotFoundError: no such file.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such CSV file: {path}")
    if path.is_dir():
        raise ValueError(f"{path} is a directory, not a CSV file: pass the path of the .csv file itself "
                         f"(e.g. {path / 'emails.csv'})")
    content = _decode_csv(path)
    with _csv_field_limit(len(content) + 1):
        reader = csv.reader(io.StringIO(content, newline=""))
        header = next(reader, None)
    if header is None:
        wanted = f"{text_column},{label_column}" if label_column else text_column
        raise ValueError(f"{path.name} is empty: expected a header row ({wanted}) and one row per email")
    t = _column(header, text_column, path.name)
    y = None if label_column is None else _column(header, label_column, path.name)

    def rows() -> Iterator[tuple[list[str], str, str, str]]:
        count = 0
        for row in _limited(reader, len(content) + 1):
            if not row:  # a blank line
                continue
            count += 1
            where = f"{path.name}, row {count} (file line {reader.line_num})"
            if len(row) > len(header):
                raise ValueError(f"{where} has {len(row)} fields, expected {len(header)}: quote the text field "
                                 '("I was charged twice, please refund me") when it holds a comma')
            text = row[t].strip() if t < len(row) else ""
            if not text:
                raise ValueError(f"{where}: the {text_column!r} column is empty")
            raw = ""
            if y is not None:
                raw = row[y].strip() if y < len(row) else ""
                if not raw:
                    raise ValueError(f"{where}: the {label_column!r} column is empty (missing label)")
            yield row + [""] * (len(header) - len(row)), text, raw, where
        if not count:
            raise ValueError(f"{path.name} has a header but no data rows: nothing to load")

    return header, rows()


def _limited(reader, limit: int) -> Iterator[list[str]]:
    """``reader``'s rows, each read with csv's field limit raised to ``limit`` (restored between rows)."""
    while True:
        with _csv_field_limit(limit):
            row = next(reader, None)
        if row is None:
            return
        yield row


def load_labelled_csv(path: str | Path, text_column: str = "text",
                      label_column: str = "label") -> tuple[list[str], np.ndarray, list[str]]:
    """Labelled texts whose labels are any strings, for the router tool.

    Read with :func:`csv_rows`'s checks. The classes are the distinct label strings found in the file
    (exactly as written, after stripping spaces), sorted; label ``i`` is ``names[i]``.

    Returns:
        ``(texts, labels, names)``: ``n`` strings, an int64 array ``(n,)`` and the sorted class names.
    """
    texts, raw = [], []
    for _, text, label, _ in csv_rows(path, text_column, label_column)[1]:
        texts.append(text)
        raw.append(label)
    names = sorted(set(raw))
    index = {name: i for i, name in enumerate(names)}
    return texts, np.array([index[label] for label in raw], dtype=np.int64), names


def load_traffic_csv(path: str | Path, text_column: str = "text") -> list[str]:
    """The texts of an unlabelled CSV file (other columns are ignored), with :func:`csv_rows`'s checks."""
    return [text for _, text, _, _ in csv_rows(path, text_column)[1]]


def load_email_csv(path: str | Path, text_column: str = "text", label_column: str = "label",
                   queues: Sequence[str] = QUEUES) -> tuple[list[str], np.ndarray]:
    """Load your own labelled emails from a CSV file (introduced in lesson 04).

    Args:
        path: a CSV file with a header row, in UTF-8 (or UTF-16 with a byte-order mark).
            Fields of any length are read (csv's own 128 KB limit is lifted for this call only).
        text_column: the column holding the email text.
        label_column: the column holding the label: a queue name from ``queues``
            (case-insensitive) or an int in ``[0, len(queues))``.
        queues: the label names, in label order (for labels that are any strings, see :func:`load_labelled_csv`).

    Returns:
        ``(texts, labels)``: a list of ``n`` strings and an int64 array of shape ``(n,)``.

    Raises:
        ValueError: another encoding (Latin-1, ...), an empty file or no data rows, a missing or
            repeated column, a row with more fields than the header (an unquoted comma in the
            text), an empty text, or a missing or unknown label; the message names the data row
            (1 = first row after the header) and its file line (checks of :func:`csv_rows`).
        ValueError: ``path`` is a directory, not a file.
        FileNotFoundError: no such file.
    """
    texts: list[str] = []
    labels: list[int] = []
    for _, text, raw, where in csv_rows(path, text_column, label_column)[1]:
        labels.append(_label(raw, queues, where))
        texts.append(text)
    return texts, np.array(labels, dtype=np.int64)
