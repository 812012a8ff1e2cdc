"""COQL's text to a query: a character scanner and a recursive-descent parser.

The language is the part of Zoho's COQL a careful client uses (sandbox/README.md, "COQL"):

    query     := SELECT field {"," field} FROM module [WHERE condition]
                 [ORDER BY field [ASC|DESC] {"," field [ASC|DESC]}]
                 [LIMIT count [OFFSET offset] | LIMIT offset "," count | OFFSET offset]
    condition := operand [(AND | OR) operand]        -- more than two need brackets (Zoho)
    operand   := "(" condition ")" | criterion
    criterion := field (= | != | < | <= | > | >=) value
               | field [NOT] LIKE string | field [NOT] IN "(" value {"," value} ")"
               | field BETWEEN value AND value | field IS [NOT] NULL
    field     := name ["." name]                     -- `Owner.id`: a lookup's property
    value     := string | number | TRUE | FALSE

Limits and errors follow zoho/crm-oas v8.0 coql (operation.md and its examples) and Zoho's
"Query API - Limitations" page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MAX_SELECT = 50
MAX_CRITERIA = 25
MAX_ORDER_BY = 10
MAX_IN_VALUES = 50
MAX_LIMIT = 2000
DEFAULT_LIMIT = 200
MAX_REACH = 100_000  # OFFSET + LIMIT: what LIMIT/OFFSET paging can reach
KEYWORDS = frozenset(
    "select from where and or not like in between is null order by asc desc limit offset "
    "true false".split()
)
COMPARISONS = ("=", "!=", "<", "<=", ">", ">=")
AGGREGATES = frozenset({"COUNT", "MAX", "MIN", "AVG", "SUM"})
UNSUPPORTED_WORDS = frozenset({"group", "having", "join", "as", "distinct", "union"})
STATEMENTS_NOT_SUPPORTED = frozenset({"insert", "update", "delete", "create", "drop", "alter"})


class CoqlError(Exception):
    """One of Zoho's COQL error answers: `{"code","details","message","status":"error"}`."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {message} {details or {}}")
        self.code = code
        self.message = message
        self.details = details or {}


@dataclass(frozen=True)
class Token:
    kind: str  # "word", "string", "number", "symbol", "end"
    text: str  # the source text (a string's value without its quotes)
    start: int

    def is_word(self, *words: str) -> bool:
        return self.kind == "word" and self.text.lower() in words


@dataclass(frozen=True)
class Field:
    path: tuple[str, ...]  # ("Last_Name",) or ("Owner", "id")

    @property
    def name(self) -> str:
        return ".".join(self.path)


@dataclass(frozen=True)
class Criterion:
    field: Field
    operator: str  # "=", ..., "like", "not like", "in", "not in", "between", "is null", ...
    values: tuple[Any, ...]  # literals; strings keep their text, numbers are int/float


@dataclass(frozen=True)
class Junction:
    operator: str  # "and" / "or"
    left: Condition
    right: Condition


Condition = Criterion | Junction


@dataclass(frozen=True)
class OrderKey:
    field: Field
    descending: bool


@dataclass(frozen=True)
class CoqlQuery:
    fields: tuple[Field, ...]
    module: str
    where: Condition | None
    order_by: tuple[OrderKey, ...]
    limit: int
    offset: int


# ---- scanner ---------------------------------------------------------------------------------


def _is_name_start(ch: str) -> bool:
    return ch.isalpha() or ch in "_$"


def _is_name_char(ch: str) -> bool:
    return ch.isalnum() or ch in "_$"


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif _is_name_start(ch):
            j = i + 1
            while j < n and _is_name_char(text[j]):
                j += 1
            tokens.append(Token("word", text[i:j], i))
            i = j
        elif ch.isdigit() or (ch == "-" and i + 1 < n and text[i + 1].isdigit()):
            j = i + 1
            while j < n and (text[j].isdigit() or text[j] == "."):
                j += 1
            if j < n and _is_name_char(text[j]):
                raise _unexpected(text, j)
            tokens.append(Token("number", text[i:j], i))
            i = j
        elif ch in "'\"":
            value, end = _scan_string(text, i)
            tokens.append(Token("string", value, i))
            i = end
        elif text.startswith(("!=", "<=", ">=", "<>"), i):
            tokens.append(Token("symbol", text[i : i + 2], i))
            i += 2
        elif ch in "=<>(),.*":
            tokens.append(Token("symbol", ch, i))
            i += 1
        else:
            raise _unexpected(text, i)
    tokens.append(Token("end", "", n))
    return tokens


def _scan_string(text: str, start: int) -> tuple[str, int]:
    """A quoted value; the quote doubled inside stands for itself (Zoho's escape)."""
    quote = text[start]
    out: list[str] = []
    i = start + 1
    while i < len(text):
        if text[i] == quote:
            if text.startswith(quote * 2, i):
                out.append(quote)
                i += 2
                continue
            return "".join(out), i + 1
        out.append(text[i])
        i += 1
    raise _unexpected(text, start)


def _location(text: str, pos: int) -> tuple[int, int]:
    line = text.count("\n", 0, pos) + 1
    column = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return line, column


def _unexpected(text: str, pos: int) -> CoqlError:
    line, column = _location(text, pos)
    near = text[pos:].split(None, 1)[0] if text[pos:].strip() else text[pos:]
    return CoqlError(
        "SYNTAX_ERROR", "unexpected token", {"line": line, "column": column, "near": near[:1000]}
    )


# ---- parser ----------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.pos = 0
        self.criteria = 0

    @property
    def token(self) -> Token:
        return self.tokens[self.pos]

    def advance(self) -> Token:
        token = self.tokens[self.pos]
        if token.kind != "end":
            self.pos += 1
        return token

    def unexpected(self, token: Token | None = None) -> CoqlError:
        token = token or self.token
        if token.kind == "end":
            return CoqlError(
                "SYNTAX_ERROR", "error occured while parsing the query", {"near": "end of query"}
            )
        return _unexpected(self.text, token.start)

    def expect_word(self, word: str) -> None:
        if not self.token.is_word(word):
            raise self.unexpected()
        self.advance()

    def expect_symbol(self, symbol: str) -> None:
        if self.token.kind != "symbol" or self.token.text != symbol:
            raise self.unexpected()
        self.advance()

    def at_symbol(self, symbol: str) -> bool:
        return self.token.kind == "symbol" and self.token.text == symbol

    # query := SELECT ... FROM ... [WHERE] [ORDER BY] [LIMIT] [OFFSET]
    def query(self, where_required: bool) -> CoqlQuery:
        first = self.token
        if first.kind != "word" or not first.is_word("select"):
            if first.kind == "word" and first.text.lower() in STATEMENTS_NOT_SUPPORTED:
                raise CoqlError("SYNTAX_ERROR", "given coql query not supported")
            raise self.unexpected()
        self.advance()
        fields = self.select_list()
        if not self.token.is_word("from"):
            if self.token.kind == "end":
                raise CoqlError("SYNTAX_ERROR", "missing clause", {"clause": "from"})
            raise self.unexpected()
        self.advance()
        module = self.name()
        where = None
        if self.token.is_word("where"):
            self.advance()
            where = self.condition()
        elif where_required:
            if self.token.kind == "end" or self.token.is_word("order", "limit", "offset"):
                raise CoqlError("SYNTAX_ERROR", "missing clause", {"clause": "where"})
            raise self.unexpected()
        self.refuse_unsupported()
        order_by: tuple[OrderKey, ...] = ()
        if self.token.is_word("order"):
            self.advance()
            self.expect_word("by")
            order_by = self.order_list()
        self.refuse_unsupported()
        limit, offset = self.paging()
        if self.token.kind != "end":
            raise self.unexpected()
        return CoqlQuery(fields, module, where, order_by, limit, offset)

    def refuse_unsupported(self) -> None:
        """GROUP BY, JOIN, aliases...: Zoho's COQL has them, the sandbox's does not."""
        if self.token.kind == "word" and self.token.text.lower() in UNSUPPORTED_WORDS:
            raise CoqlError("SYNTAX_ERROR", "given coql query not supported")

    def name(self) -> str:
        token = self.token
        if token.kind != "word" or token.text.lower() in KEYWORDS:
            raise self.unexpected()
        self.advance()
        return token.text

    def field(self) -> Field:
        self.refuse_unsupported()
        start = self.token.start
        path = [self.name()]
        if self.at_symbol("("):
            self.function_call(path[0], start)
        while self.at_symbol("."):
            self.advance()
            path.append(self.name())
        if len(path) > 2:
            raise CoqlError("SYNTAX_ERROR", "given coql query not supported")
        return Field(tuple(path))

    def function_call(self, name: str, start: int) -> None:
        """COUNT(...), MAX(...) are Zoho's but not the sandbox's; any other name is the spec's
        INVALID_DATA "unsupported aggregate function"."""
        if name.upper() in AGGREGATES:
            raise CoqlError("SYNTAX_ERROR", "given coql query not supported")
        while not self.at_symbol(")") and self.token.kind != "end":
            self.advance()
        end = self.advance().start + 1
        raise CoqlError(
            "INVALID_DATA",
            "invalid data",
            {"reason": "unsupported aggregate function", "column": self.text[start:end]},
        )

    def select_list(self) -> tuple[Field, ...]:
        fields = [self.select_field()]
        while self.at_symbol(","):
            self.advance()
            fields.append(self.select_field())
        self.refuse_unsupported()
        if len(fields) > MAX_SELECT:
            raise CoqlError(
                "LIMIT_EXCEEDED", "too many select columns", {"clause": "select", "limit": 50}
            )
        seen: set[str] = set()
        for f in fields:
            if f.name in seen:
                raise CoqlError(
                    "DUPLICATE_DATA", "duplicate select column", {"column_name": f.name}
                )
            seen.add(f.name)
        return tuple(fields)

    def select_field(self) -> Field:
        # A quoted column name: how Zoho lets a reserved word (`'External'`) be selected.
        if self.token.kind == "string":
            return Field((self.advance().text,))
        return self.field()

    # condition := operand [(and|or) operand]
    def condition(self) -> Condition:
        left = self.operand()
        if self.token.is_word("and", "or"):
            operator = self.advance().text.lower()
            right = self.operand()
            if self.token.is_word("and", "or"):
                # Zoho wants brackets once there are more than two criteria: ((A and B) and C).
                raise CoqlError(
                    "SYNTAX_ERROR",
                    "error occured while parsing the query",
                    {"near": self.token.text},
                )
            return Junction(operator, left, right)
        return left

    def operand(self) -> Condition:
        if self.at_symbol("("):
            self.advance()
            inner = self.condition()
            self.expect_symbol(")")
            return inner
        if self.token.is_word("not"):
            raise CoqlError("SYNTAX_ERROR", "operator not supported", {"operator": "not"})
        return self.criterion()

    def criterion(self) -> Criterion:
        field = self.field()
        self.criteria += 1
        if self.criteria > MAX_CRITERIA:
            raise CoqlError(
                "LIMIT_EXCEEDED", "too many criteria", {"clause": "where", "limit": MAX_CRITERIA}
            )
        token = self.token
        if token.kind == "symbol" and token.text in COMPARISONS:
            self.advance()
            return Criterion(field, token.text, (self.value(),))
        if token.kind == "symbol" and token.text == "<>":
            raise CoqlError("SYNTAX_ERROR", "operator not supported", {"operator": "<>"})
        negated = False
        if token.is_word("not"):
            self.advance()
            negated = True
            if not self.token.is_word("like", "in"):
                raise CoqlError("SYNTAX_ERROR", "operator not supported", {"operator": "not"})
        prefix = "not " if negated else ""
        if self.token.is_word("like"):
            self.advance()
            if self.token.kind != "string":
                raise self.unexpected()
            return Criterion(field, prefix + "like", (self.advance().text,))
        if self.token.is_word("in"):
            self.advance()
            return Criterion(field, prefix + "in", self.value_list(field))
        if self.token.is_word("between"):
            self.advance()
            low = self.value()
            self.expect_word("and")
            return Criterion(field, "between", (low, self.value()))
        if self.token.is_word("is"):
            self.advance()
            operator = "is null"
            if self.token.is_word("not"):
                self.advance()
                operator = "is not null"
            self.expect_word("null")
            return Criterion(field, operator, ())
        raise self.unexpected()

    def value_list(self, field: Field) -> tuple[Any, ...]:
        self.expect_symbol("(")
        if self.token.is_word("select"):
            raise CoqlError("SYNTAX_ERROR", "given coql query not supported")
        values = [self.value()]
        while self.at_symbol(","):
            self.advance()
            values.append(self.value())
        self.expect_symbol(")")
        if len(values) > MAX_IN_VALUES:
            raise CoqlError(
                "LIMIT_EXCEEDED",
                "too many values",
                {"clause": "where", "column_name": field.name, "limit": MAX_IN_VALUES},
            )
        return tuple(values)

    def value(self) -> Any:
        token = self.token
        if token.kind == "string":
            self.advance()
            return token.text
        if token.kind == "number":
            self.advance()
            return _number(token.text, self)
        if token.is_word("true", "false"):
            self.advance()
            return token.text.lower() == "true"
        if token.is_word("null"):
            raise CoqlError(
                "SYNTAX_ERROR", "error occured while parsing the query", {"near": token.text}
            )
        raise self.unexpected()

    def order_list(self) -> tuple[OrderKey, ...]:
        keys = [self.order_key()]
        while self.at_symbol(","):
            self.advance()
            keys.append(self.order_key())
        if len(keys) > MAX_ORDER_BY:
            raise CoqlError(
                "LIMIT_EXCEEDED",
                "too many order by columns",
                {"clause": "order by", "limit": MAX_ORDER_BY},
            )
        seen: set[str] = set()
        for key in keys:
            if key.field.name in seen:
                raise CoqlError(
                    "DUPLICATE_DATA", "duplicate order by column", {"column_name": key.field.name}
                )
            seen.add(key.field.name)
        return tuple(keys)

    def order_key(self) -> OrderKey:
        field = self.field()
        descending = False
        if self.token.is_word("asc", "desc"):
            descending = self.advance().text.lower() == "desc"
        return OrderKey(field, descending)

    # LIMIT count [OFFSET offset] | LIMIT offset, count | OFFSET offset
    def paging(self) -> tuple[int, int]:
        limit, offset = DEFAULT_LIMIT, 0
        if self.token.is_word("limit"):
            self.advance()
            first = self.advance()
            if self.at_symbol(","):
                self.advance()
                offset = _offset(first)
                limit = _limit(self.advance())
            else:
                limit = _limit(first)
                if self.token.is_word("offset"):
                    self.advance()
                    offset = _offset(self.advance())
        elif self.token.is_word("offset"):
            self.advance()
            offset = _offset(self.advance())
        if offset + limit > MAX_REACH:
            raise CoqlError(
                "LIMIT_EXCEEDED",
                "offset and limit reach past the records COQL can fetch",
                {"clause": "offset", "limit": MAX_REACH},
            )
        return limit, offset


def _number(text: str, parser: _Parser) -> int | float:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise parser.unexpected() from None


def _limit(token: Token) -> int:
    text = token.text
    if token.kind != "number" or not text.lstrip("-").isdigit():
        raise CoqlError("INVALID_QUERY", "limit given seems to be invalid", {"limit": text})
    value = int(text)
    if value <= 0:
        raise CoqlError("INVALID_DATA", "limit should be greater than 0")
    if value > MAX_LIMIT:
        raise CoqlError(
            "LIMIT_EXCEEDED", "limit exceeds the maximum", {"clause": "limit", "limit": MAX_LIMIT}
        )
    return value


def _offset(token: Token) -> int:
    if token.kind != "number" or not token.text.isdigit():
        raise CoqlError("INVALID_QUERY", "offset given seems to be invalid", {"offset": token.text})
    return int(token.text)


def parse(text: str, *, where_required: bool = True) -> CoqlQuery:
    """The query, or CoqlError. `where_required`: Zoho's spec answers a query without WHERE with
    SYNTAX_ERROR `{"clause": "where"}` ("missing clause"); False accepts it."""
    if not text.strip():
        raise CoqlError("INVALID_QUERY", "Invalid query formed")
    return _Parser(text).query(where_required)
