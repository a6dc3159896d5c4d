"""Conversation -> standalone question: a follow-up ("and in 2023?") is rewritten before retrieval.

Retrieval sees one question, so a chat turn that leans on earlier turns must carry what it refers to. Two
ways, chosen by `settings.api_chat_rewrite`:

- `rules` (the default without an LLM endpoint): deterministic. Each user turn is made standalone in order,
  so a third turn builds on the rewritten second. A turn is a follow-up when it opens with a continuation
  ("and …", "what about …", "how about …"), leans on a pronoun ("it", "its", "they", "there", "that year"),
  or is too short to stand alone. Ellipses swap their fragment into the previous question's slot of the same
  kind (a year for a year, a quarter for a quarter, a name for a name, else the phrase after the same
  preposition or the one MiniLM finds most alike); pronouns take the last name the previous question mentions;
  anything else leaning on it (a pronoun with no name to take, a turn too short to stand alone) carries the
  previous question along in brackets.
- `llm` (the default when `PAGELENS_LLM_BASE_URL` is set): the configured OpenAI-compatible endpoint rewrites
  it; an error, a timeout or an unusable reply falls back to the rules, with the reason recorded.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pagelens.settings import Settings

log = logging.getLogger(__name__)

CUE = re.compile(r"^(?:and|also|plus|but|or|so)?\s*(?:what|how)\s+about\s+|^(?:and|also|plus|but|or)\s+"
                 r"|^(?:same|the same)\s+(?:for|in)\s+", re.I)
INSTEAD = re.compile(r"\s+(?:instead|then|too|as well)\s*$", re.I)
PRONOUN = re.compile(r"\b(?:it|its|they|them|their|theirs|there|he|she|him|his|her|the same)\b"
                     r"|\b(?:this|that|these|those)\s+(?=(?:one|ones|year|period|quarter|figure|number|value|amount|"
                     r"document|report|page|table|chart|case|item|section|part)\b)", re.I)
QUESTION_HEAD = re.compile(r"^(?:what|which|who|whom|whose|where|when|why|how(?:\s+(?:many|much|long|often|far|old|"
                           r"large|big|high))?)\s+(?:is|are|was|were|does|do|did|has|have|had|can|could|will|would|"
                           r"should)?\s*", re.I)
YEAR_RANGE = re.compile(r"\b(?:1[89]\d\d|20\d\d)\s*[-–/]\s*(?:1[89]\d\d|20\d\d|\d\d)\b")
YEAR = re.compile(r"\b(?:FY\s?)?(?:1[89]\d\d|20\d\d)\b")
WH_WORD = re.compile(r"\b(?:what|which|who|whom|whose|where|when|why|how)\b", re.I)
QUARTER = re.compile(r"\b(?:Q[1-4]|(?:first|second|third|fourth)\s+quarter)\b", re.I)
PLURAL = re.compile(r"\b(?!(?:this|its|was|is|has|does|his|us|as|thus|less|always|whereas)\b)[a-z]{3,}s\b")
MONTH = re.compile(r"\b(?:January|February|March|April|May|June|July|August|September|October|November|December)\b")
PREPOSITION = re.compile(r"\s+(?:of|for|in|on|at|about|to|from|by|with|during|between|per)\s+", re.I)
NAME = re.compile(r"\b[A-Z][\w&.-]*(?:\s+(?:of|and|&|de|du|von)?\s*[A-Z][\w&.-]*)*")
WORD = re.compile(r"[A-Za-z0-9][\w'-]*")
STOP = frozenset("a an and are as at be but by can could did do does for from had has have how i in is it its "
                 "me my of on or so than that the their them there these they this those to too us was we were "
                 "what when where which who whom whose why will with would you also about then instead same "
                 "please tell show give".split())
MIN_STANDALONE_TERMS = 3  # fewer content words than this, with an earlier question to lean on: a follow-up
MIN_SLOT_SIMILARITY = 0.25  # below this MiniLM cosine the fragment fits no slot: it is appended instead
REWRITE_PROMPT = (
    "Rewrite the user's last question so that it can be understood without the conversation: resolve pronouns "
    "and ellipses from the earlier turns and keep names, years and figures exactly. If it already stands alone, "
    "repeat it unchanged. Reply with the question only, on one line."
)

Similarity = Callable[[str, Sequence[str]], list[float]]


@dataclass
class Turn:
    role: str  # user | assistant
    text: str


@dataclass
class Rewrite:
    """The question retrieval and answering see, and how it was made from the conversation."""

    question: str
    original: str
    method: str  # none (first or standalone turn) | rules | llm
    fallback_reason: str = ""  # why the LLM rewrite was not used (method rules)

    @property
    def rewritten(self) -> bool:
        return self.question != self.original


def standalone_question(turns: Sequence[Turn], settings: Settings) -> Rewrite:
    """The last user turn as a standalone question (`turns` ends with it; earlier turns are context)."""
    question = turns[-1].text.strip()
    earlier = [t for t in turns[:-1] if t.text.strip()]
    if not any(t.role == "user" for t in earlier) or settings.api_chat_rewrite == "off":
        return Rewrite(question, question, "none")
    method = settings.api_chat_rewrite
    if method == "auto":
        method = "llm" if settings.llm_base_url else "rules"
    if method == "llm":
        try:
            return Rewrite(llm_rewrite(turns, settings), question, "llm")
        except RewriteError as exc:
            log.warning("LLM rewrite failed, rewrote by rules: %s", exc)
            result = rules_rewrite(turns, _minilm(settings))
            result.fallback_reason = str(exc)
            return result
    return rules_rewrite(turns, _minilm(settings))


# -- rules ----------------------------------------------------------------------------------------
def rules_rewrite(turns: Sequence[Turn], similarity: Similarity | None = None) -> Rewrite:
    """Make every user turn standalone in order; the last one's result."""
    previous = ""
    for turn in turns:
        if turn.role != "user" or not turn.text.strip():
            continue
        text = " ".join(turn.text.split())
        previous = rewrite_turn(text, previous, similarity) if previous else text
    original = " ".join(turns[-1].text.split())
    return Rewrite(previous, original, "rules" if previous != original else "none")


def rewrite_turn(question: str, previous: str, similarity: Similarity | None = None) -> str:
    """`question` made standalone against `previous` (itself standalone), or unchanged if it stands alone."""
    cue = CUE.match(question)
    if cue:
        fragment = INSTEAD.sub("", question[cue.end():].strip(" ?.!")).strip(" ?.!")
        if fragment and not WH_WORD.search(fragment):
            return substitute(previous, fragment, similarity)
        if fragment:  # "and how many units were shipped?": a whole question after the cue
            question = fragment[0].upper() + fragment[1:] + "?"
    if PRONOUN.search(question):
        return resolve_pronouns(question, previous)
    if len(content_terms(question)) < MIN_STANDALONE_TERMS and content_terms(previous) - content_terms(question):
        return carry(question, previous)
    return question


def carry(question: str, previous: str) -> str:
    """The follow-up with the previous question alongside: what it leans on, for retrieval and the answer."""
    return f"{question.rstrip(' ?.!')} ({previous.rstrip(' ?')})?"


def substitute(previous: str, fragment: str, similarity: Similarity | None = None) -> str:
    """The previous question with its slot of the fragment's kind replaced by the fragment (or the fragment added)."""
    result, rest = previous.rstrip(" ?"), fragment
    for pattern in (YEAR_RANGE, YEAR, QUARTER, MONTH):
        found = pattern.findall(rest)
        if not found:
            continue
        slots = list(pattern.finditer(result))
        if slots:
            last = slots[-1]
            result = result[:last.start()] + found[0] + result[last.end():]
        else:
            result += f" {_with_preposition(rest, pattern, found[0])}"
        rest = _drop(rest, pattern)
    rest = re.sub(r"^(?:in|for|of|on|at|during|the)\s+$", "", rest, flags=re.I).strip(" ,")
    if rest and content_terms(rest):
        result = _substitute_phrase(result, rest, similarity)
    return result + "?"


def _with_preposition(fragment: str, pattern: re.Pattern[str], value: str) -> str:
    """'in 2023' stays 'in 2023'; a bare '2023' becomes 'in 2023'."""
    match = re.search(rf"\b(in|for|during|of|by|at)\s+{re.escape(value)}", fragment, re.I)
    return f"{match.group(1)} {value}" if match else f"in {value}"


def _drop(fragment: str, pattern: re.Pattern[str]) -> str:
    without = pattern.sub("", fragment)
    return re.sub(r"\b(?:in|for|during|of|by|at)\s*$", "", without.strip(), flags=re.I).strip(" ,")


def _substitute_phrase(question: str, phrase: str, similarity: Similarity | None) -> str:
    """Replace the slot most like `phrase`: a name for a name, else the phrase after the same preposition ("for
    men" takes the place of "for women"), else the one MiniLM finds closest; append when nothing fits."""
    lead = re.match(r"^(of|for|in|on|at|about|to|from|by|with|during|per)\s+", phrase, re.I)
    phrase = phrase[lead.end():] if lead else phrase
    is_name = bool(phrase[:1].isupper()) and bool(NAME.fullmatch(phrase))
    slots = _name_slots(question) if is_name else []
    if not slots:
        slots = [(a, b) for a, b, before in _phrase_slots(question)
                 if not lead or before.lower() == lead.group(1).lower()] or [s[:2] for s in _phrase_slots(question)]
    if not slots:
        return f"{question} for {phrase}"
    if len(slots) == 1 or similarity is None:
        best = slots[-1] if is_name or lead else slots[0]
    else:
        scores = similarity(phrase, [question[a:b] for a, b in slots])
        if max(scores) < MIN_SLOT_SIMILARITY and not is_name:
            return f"{question} for {phrase}"
        best = slots[max(range(len(slots)), key=scores.__getitem__)]
    return question[:best[0]] + phrase + question[best[1]:]


def _name_slots(question: str) -> list[tuple[int, int]]:
    """Capitalised names (not the question word opening the sentence), possessive 's left outside."""
    slots = []
    for match in NAME.finditer(question):
        text = match.group(0)
        start = match.start()
        if start == 0 or question[:start].rstrip().endswith(","):  # capitalised by position, not a name
            head = text.split(maxsplit=1)
            if len(head) == 1:
                continue
            start += len(head[0]) + 1
            text = head[1]
        if YEAR.fullmatch(text) or QUARTER.fullmatch(text) or MONTH.fullmatch(text):
            continue
        end = start + len(text)
        if question[end - 2:end] == "'s":
            end -= 2
        slots.append((start, end))
    return slots


def _phrase_slots(question: str) -> list[tuple[int, int, str]]:
    """The subject after the question head, an opening "On the X," and each phrase after a preposition (up to
    the next one), with the preposition before it ("" for the subject)."""
    head = QUESTION_HEAD.match(question)
    start = head.end() if head else 0
    opening = re.match(r"^(In|On|For|At|During|By)\s+([^,]+),", question)  # "On the X benchmark, which …"
    slots = [(opening.start(2), opening.end(2), opening.group(1))] if opening and not head else []
    if opening and not head:
        start = opening.end()
    bounds = [start, *(m.start() for m in PREPOSITION.finditer(question, start)), len(question)]
    for n, (a, b) in enumerate(itertools.pairwise(bounds)):
        before = ""
        if n > 0:
            match = PREPOSITION.match(question, a)
            a, before = match.end(), match.group(0).strip()  # type: ignore[union-attr]
        span = question[a:b].strip()
        if span and content_terms(span) and not YEAR.fullmatch(span) and not QUARTER.fullmatch(span):
            offset = question.index(span, a)
            slots.append((offset, offset + len(span), before))
    return slots


def resolve_pronouns(question: str, previous: str) -> str:
    """Pronouns take the last name the previous question mentions ("its pages" -> "DocLayNet's pages", "there" ->
    "in Finland"); without a name the previous question is carried along instead (guessing a noun phrase as the
    antecedent read badly and retrieved worse on the held-out pairs)."""
    names = [previous[a:b] for a, b in _name_slots(previous)]
    if not names:
        return carry(question, previous)
    name = names[-1]

    def replace(match: re.Match[str]) -> str:
        word = match.group(0).lower()
        if word in ("they", "them", "their", "theirs") and PLURAL.search(question[:match.start()]):
            return match.group(0)  # "read characters and turned them into …": its antecedent is right there
        if word in ("its", "their", "theirs", "his", "her"):
            return f"{name}'" if name.endswith("s") else f"{name}'s"
        if word == "there":
            return f"in {name}"
        if word.split()[0] in ("this", "that", "these", "those"):  # "that year": the one named before
            return "the "
        return name

    resolved = PRONOUN.sub(replace, question, count=2)
    if re.search(r"\bthe\s+(?:year|period)\b", resolved) and YEAR.search(previous):
        resolved = re.sub(r"\bthe\s+(?:year|period)\b", YEAR.findall(previous)[-1], resolved, count=1)
    return " ".join(resolved.split())


def content_terms(text: str) -> set[str]:
    return {w.lower() for w in WORD.findall(text) if w.lower() not in STOP}


# -- LLM ------------------------------------------------------------------------------------------
class RewriteError(RuntimeError):
    """The endpoint failed or replied with something that is not a usable question."""


def llm_rewrite(turns: Sequence[Turn], settings: Settings) -> str:
    import openai

    transcript = "\n".join(f"{t.role}: {t.text.strip()}" for t in turns[:-1] if t.text.strip())
    prompt = f"Conversation:\n{transcript}\n\nLast question: {turns[-1].text.strip()}\n\nStandalone question:"
    try:
        with openai.OpenAI(base_url=settings.llm_base_url, api_key=settings.llm_api_key,
                           timeout=settings.llm_timeout_s, max_retries=0) as client:
            response = client.chat.completions.create(
                model=settings.llm_model, max_tokens=96, temperature=0,
                messages=[{"role": "system", "content": REWRITE_PROMPT}, {"role": "user", "content": prompt}])
    except openai.OpenAIError as exc:
        raise RewriteError(f"endpoint error: {type(exc).__name__}: {exc}"[:300]) from exc
    choices = getattr(response, "choices", None) or []
    content = getattr(getattr(choices[0], "message", None), "content", None) if choices else None
    text = (content or "").strip().splitlines()[0].strip(" \"'") if (content or "").strip() else ""
    text = re.sub(r"^(?:standalone question|question)\s*:\s*", "", text, flags=re.I)
    if not text or len(text) > settings.api_max_question_chars or not content_terms(text):
        raise RewriteError(f"{settings.llm_model} gave no usable question ({(content or '')[:80]!r})")
    return text


def _minilm(settings: Settings) -> Similarity:
    """Cosine similarity of a phrase to candidate slots with the loaded MiniLM (vectors are normalised)."""

    def similarity(phrase: str, candidates: Sequence[str]) -> list[float]:
        from pagelens.embed import text_encoder

        vectors = text_encoder(settings).encode([phrase, *candidates])
        return [sum(a * b for a, b in zip(vectors[0], v, strict=True)) for v in vectors[1:]]

    return similarity
