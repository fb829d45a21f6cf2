"""regex.globs_match (topdown/regex.go builtinGlobsMatch): a port of the Go module OPA calls,
github.com/yashtewari/glob-intersection v0.2.0 (`gintersect.NonEmpty`), step for step:
tokenize.go (tokens over code points: `.` any character, `[..]` a set with `a-z` ranges, `\\`
escapes the next character, `+` / `*` flag the token before), simplify.go (adjacent equal
flagged tokens merged, `+` winning), non_empty.go (trim the common unflagged prefix and
suffix, then walk both globs, handing flagged tokens to intersectPlus / intersectStar) and
match.go (token against token, flags ignored; a dot matches any set, even an empty one).

The walk is the module's own heuristic, not an exact language intersection, so its answers are
kept as they are (`a*` and `` intersect, `ab` and `a*` too). Its cost is exponential in the
number of flags, and a star's scan of the other glob is linear in its length, so the walk is
counted in token comparisons (each call and each loop iteration is a step, so a long glob such
as a 9,000-character claim under `.*a.*b.*c` cannot cost n² comparisons within the bound): each
walk is bounded (MAX_STEPS) and one past the bound raises
GlobTooComplexError, which traps the evaluation (a deny with an error log) instead of holding a
worker for as long as OPA would compute.
"""

from dataclasses import dataclass

from sekisho.policy.wasm.builtins.registry import BuiltinError

CHARACTER, DOT, SET = 0, 1, 2  # gintersect.TokenType, in its order (Match swaps by it)
NONE, PLUS, STAR = 0, 1, 2  # gintersect.Flag
_FLAGS = {"+": PLUS, "*": STAR}
MAX_STEPS = 100_000


class GlobTooComplexError(Exception):
    """The intersection walk exceeded MAX_STEPS: the call traps rather than run on."""


@dataclass(slots=True)
class Token:
    """A character (`runes` one range), a dot, or a set (`runes` merged, sorted ranges)."""

    kind: int
    runes: tuple[tuple[int, int], ...] = ()
    flag: int = NONE


def non_empty(lhs: str, rhs: str) -> bool:
    """gintersect.NonEmpty. Raises: BuiltinError (a glob does not tokenize),
    GlobTooComplexError."""
    g1, g2 = new_glob(lhs), new_glob(rhs)
    trimmed = _trim_globs(g1, g2)
    if trimmed is None:
        return False
    g1, g2 = trimmed
    return _Walk().normal(g1, 0, g2, 0)


def new_glob(text: str) -> list[Token]:
    """gintersect.NewGlob: Tokenize then Simplify. Raises: BuiltinError."""
    return _simplify(_tokenize(text))


class _Input:
    """The code points of a glob and Go's nextRune over them."""

    def __init__(self, text: str) -> None:
        self.text = text

    def next_rune(self, index: int) -> tuple[int, str, bool] | None:
        """(next index, rune, escaped), None at the end. Raises: BuiltinError (a trailing
        backslash)."""
        if index >= len(self.text):
            return None
        if self.text[index] == "\\":
            if index < len(self.text) - 1:
                return index + 2, self.text[index + 1], True
            raise BuiltinError("globs_match: input ends with a \\ (escape) character")
        return index + 1, self.text[index], False


def _tokenize(text: str) -> list[Token]:
    source, tokens, index = _Input(text), [], 0
    while (found := _next_token(source, index)) is not None:
        index, token = found
        tokens.append(token)
    return tokens


def _next_token(source: _Input, index: int) -> tuple[int, Token] | None:
    step = source.next_rune(index)
    if step is None:
        return None
    index, rune, escaped = step
    if escaped:
        token = Token(CHARACTER, ((ord(rune), ord(rune)),))
    elif rune == ".":
        token = Token(DOT)
    elif rune == "[":
        index, token = _next_token_set(source, index)
    elif rune == "]":
        raise BuiltinError("globs_match: set-close ']' with no preceding '['")
    elif rune in _FLAGS:
        raise BuiltinError(f"globs_match: flag '{rune}' must be preceded by a non-flag")
    else:
        token = Token(CHARACTER, ((ord(rune), ord(rune)),))
    flag_step = source.next_rune(index)  # nextFlag: a trailing backslash here is an error too
    if flag_step is not None and not flag_step[2] and flag_step[1] in _FLAGS:
        index, token.flag = flag_step[0], _FLAGS[flag_step[1]]
    return index, token


def _next_token_set(source: _Input, index: int) -> tuple[int, Token]:
    """nextTokenSet: the members up to the closing `]`; `-` makes a range from the previous
    single member (not one that ended a range) to the next rune, which must not be an unescaped
    `]` or `-` and must not sort before it."""
    ranges: list[tuple[int, int]] = []
    previous: int | None = None
    while (step := source.next_rune(index)) is not None:
        index, rune, escaped = step
        if not escaped and rune == "]":
            return index, Token(SET, _merge(ranges))
        if escaped or rune != "-":
            ranges.append((ord(rune), ord(rune)))
            previous = ord(rune)
            continue
        if previous is None:
            raise BuiltinError("globs_match: range character '-' must follow a character")
        if index >= len(source.text) - 1:
            raise BuiltinError("globs_match: range character '-' must be followed by one")
        index, rune, escaped = source.next_rune(index) or (index, "", False)
        if not escaped and rune in "]-":
            raise BuiltinError("globs_match: range character '-' before a special symbol")
        if ord(rune) < previous:
            raise BuiltinError("globs_match: range is out of order")
        ranges.append((previous, ord(rune)))
        previous = None
    raise BuiltinError("globs_match: found [ without matching ]")


def _merge(ranges: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """The set's members as sorted, disjoint, non-adjacent ranges (Go keeps a map of runes:
    two sets are Equal exactly when these are equal)."""
    merged: list[tuple[int, int]] = []
    for low, high in sorted(ranges):
        if merged and low <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return tuple(merged)


def _simplify(tokens: list[Token]) -> list[Token]:
    """Simplify: a flagged token equal (flags aside) to the flagged one before it is dropped,
    the kept one flagged `+` if either was (t+t* == t*t+ == t+)."""
    simple: list[Token] = []
    for token in tokens:
        latest = simple[-1] if simple else None
        if latest is not None and _merges(latest, token):
            latest.flag = PLUS if PLUS in (token.flag, latest.flag) else STAR
        else:
            simple.append(token)
    return simple


def _merges(latest: Token, token: Token) -> bool:
    """Both flagged and Equal (gintersect's Token.Equal: same kind and members)."""
    flagged = NONE not in (latest.flag, token.flag)
    return flagged and token.kind == latest.kind and token.runes == latest.runes


def match(t1: Token, t2: Token) -> bool:
    """gintersect.Match: one token against another, flags ignored."""
    if t1.kind > t2.kind:
        t1, t2 = t2, t1
    if DOT in (t1.kind, t2.kind):
        return True  # a dot matches characters, dots and every set, the empty one included
    if t1.kind == CHARACTER and t2.kind == CHARACTER:
        return t1.runes == t2.runes
    return _overlap(t1.runes, t2.runes)


def _overlap(a: tuple[tuple[int, int], ...], b: tuple[tuple[int, int], ...]) -> bool:
    i = j = 0
    while i < len(a) and j < len(b):
        if a[i][1] < b[j][0]:
            i += 1
        elif b[j][1] < a[i][0]:
            j += 1
        else:
            return True
    return False


def _trim_globs(g1: list[Token], g2: list[Token]) -> tuple[list[Token], list[Token]] | None:
    """trimGlobs: drop the matching unflagged prefix and suffix, one token of each kept; None
    when they do not match."""
    left = 0
    while left < len(g1) and left < len(g2) and g1[left].flag == NONE == g2[left].flag:
        if not match(g1[left], g2[left]):
            return None
        left += 1
    left = max(left - 1, 0)
    r1, r2 = len(g1) - 1, len(g2) - 1
    while r1 >= left and r2 >= left and g1[r1].flag == NONE == g2[r2].flag:
        if not match(g1[r1], g2[r2]):
            return None
        r1, r2 = r1 - 1, r2 - 1
    if r1 < len(g1) - 1:
        r1, r2 = r1 + 1, r2 + 1
    return g1[left : r1 + 1], g2[left : r2 + 1]


class _Walk:
    """intersectNormal / intersectSpecial / intersectPlus / intersectStar over one step budget.
    Go passes sub-slices (`g1[i:]`); here each glob is passed with the offset it starts at."""

    def __init__(self) -> None:
        self.steps = 0

    def _step(self) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise GlobTooComplexError(f"globs_match: more than {MAX_STEPS} steps")

    def normal(self, g1: list[Token], i: int, g2: list[Token], j: int) -> bool:
        self._step()
        while i < len(g1) and j < len(g2):
            self._step()
            if g1[i].flag != NONE or g2[j].flag != NONE:
                return self.special(g1, i, g2, j)
            if not match(g1[i], g2[j]):
                return False
            i, j = i + 1, j + 1
        return i == len(g1) and j == len(g2)

    def special(self, g1: list[Token], i: int, g2: list[Token], j: int) -> bool:
        if g1[i].flag == NONE:
            g1, i, g2, j = g2, j, g1, i
        if g1[i].flag == PLUS:
            return self.plus(g1, i, g2, j)
        return self.star(g1, i, g2, j)

    def plus(self, plussed: list[Token], p: int, other: list[Token], o: int) -> bool:
        if not match(plussed[p], other[o]):
            return False
        if self.star(plussed, p, other, o + 1):  # the plussed token took other[o] ...
            return True
        # ... or other[o], flagged, takes all of plussed[p].
        return other[o].flag != NONE and self.normal(plussed, p + 1, other, o)

    def star(self, starred: list[Token], s: int, other: list[Token], o: int) -> bool:
        self._step()
        star_token = starred[s]
        following = starred[s + 1] if s + 1 < len(starred) else None
        for k in range(o, len(other)):
            self._step()
            tried = following is not None and match(other[k], following)
            if tried and self.normal(starred, s + 1, other, k):
                return True
            if not match(other[k], star_token):
                return False
        return following is None
