"""Row filters such as ``tokens_per_param<=30 and N>1e8``: a small expression grammar over named columns, parsed
(never ``eval``-ed) and applied to numpy arrays.

Grammar (keywords case-insensitive; ``,`` and ``&&`` also mean ``and``, ``||`` means ``or``)::

    filter     := conjunction ("or" conjunction)*
    conjunction:= unit ("and" unit)*
    unit       := "not" unit | "(" filter ")" | comparison
    comparison := sum OP sum [OP sum]   OP in <=, <, >=, >, ==, !=   (a chain: 1e8 <= N < 1e9)
    sum        := product (("+" | "-") product)*
    product    := unary (("*" | "/") unary)*
    unary      := "-" unary | atom
    atom       := NUMBER | NAME | "(" sum ")"

NAME is a column (letters, digits, ``_``; quote a name with other characters in backticks: `` `final loss` ``).
Brackets group filters (``(N > 1e8 or D < 1e9) and not (loss > 3)``) as well as sums (``(D / N) > 20``). ``not``
binds tighter than ``and``, which binds tighter than ``or``. An unknown name, a stray character or a missing
operand is a ValueError that names it and its position; so is a division by zero in any row (a filter that
silently kept or dropped those rows would mislead: ``N / 0 > 1`` would be true everywhere).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import numpy as np

_TOKEN = re.compile(
    r"\s*(?:(?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_.]*)"
    r"|`(?P<quoted>[^`]+)`|(?P<op><=|>=|==|!=|&&|\|\||[<>+\-*/(),]))"
)
_COMPARE: dict[str, Callable] = {
    "<=": np.less_equal,
    "<": np.less,
    ">=": np.greater_equal,
    ">": np.greater,
    "==": np.equal,
    "!=": np.not_equal,
}
_ARITH: dict[str, Callable] = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide}


class _SyntaxError(ValueError):
    """A filter that does not parse (as opposed to one that parses but cannot be evaluated, e.g. a division by
    zero, which is never retried another way). ``index`` is the token at which parsing stopped."""

    def __init__(self, message: str, index: int):
        super().__init__(message)
        self.index = index


def row_mask(expression: str, columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """The boolean mask of the rows for which ``expression`` holds, over ``columns`` (name -> 1-D array)."""
    return _Parser(expression, columns).parse()


def _tokenize(expression: str) -> list[tuple[str, str, int]]:
    tokens: list[tuple[str, str, int]] = []
    position = 0
    text = expression.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match:
            position += len(text[position:]) - len(text[position:].lstrip())
            raise ValueError(f"--where {expression!r}: unexpected {text[position]!r} at character {position + 1}")
        kind = match.lastgroup
        assert kind is not None  # every alternative of _TOKEN is a named group
        start, value = match.start(kind), match.group(kind)
        if kind == "quoted":
            kind = "name"
        elif kind == "name" and value.lower() in ("and", "or", "not"):
            kind, value = "op", value.lower()
        elif kind == "op":
            value = {",": "and", "&&": "and", "||": "or"}.get(value, value)
        tokens.append((kind, value, start))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, expression: str, columns: Mapping[str, np.ndarray]):
        if not expression or not expression.strip():
            raise ValueError("--where: empty filter expression")
        self.expression, self.columns = expression, columns
        self.tokens = _tokenize(expression)
        self.i = 0

    def _error(self, what: str) -> _SyntaxError:
        where = f"at character {self.tokens[self.i][2] + 1}" if self.i < len(self.tokens) else "at the end"
        return _SyntaxError(f"--where {self.expression!r}: {what} {where}", self.i)

    def _peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def _take_op(self, *ops: str) -> str | None:
        token = self._peek()
        if token and token[0] == "op" and token[1] in ops:
            self.i += 1
            return token[1]
        return None

    def parse(self) -> np.ndarray:
        mask = self._disjunction()
        token = self._peek()
        if token is not None:
            raise self._error(f"unexpected {token[1]!r}")
        return np.asarray(mask, dtype=bool)

    def _disjunction(self):
        mask = self._conjunction()
        while self._take_op("or"):
            mask = mask | self._conjunction()
        return mask

    def _conjunction(self):
        mask = self._unit()
        while self._take_op("and"):
            mask = mask & self._unit()
        return mask

    def _unit(self):
        if self._take_op("not"):
            return ~np.asarray(self._unit(), dtype=bool)
        token = self._peek()
        if token and token[0] == "op" and token[1] == "(":
            # A bracket opens either a filter, "(N > 1 or D < 2)", or a sum, "(D / N) > 20": try the filter first,
            # and read it as a sum when it is not one (a syntax error inside, or an operator after its ')').
            start, as_filter = self.i, None
            try:
                self.i += 1
                mask = self._disjunction()
                if not self._take_op(")"):
                    raise self._error("expected ')'")
                after = self._peek()
                if after is None or not self._next_is(*_COMPARE, *_ARITH):
                    return mask
                raise self._error(f"a filter in brackets (true or false per row) cannot take {after[1]!r}")
            except _SyntaxError as error:
                as_filter = error
            self.i = start
            try:
                return self._comparison()
            except _SyntaxError as error:  # neither reading parses: say the one that got further
                if as_filter is not None and as_filter.index > error.index:
                    raise as_filter from None
                raise
        return self._comparison()

    def _next_is(self, *ops: str) -> bool:
        token = self._peek()
        return bool(token and token[0] == "op" and token[1] in ops)

    def _comparison(self):
        left = self._sum()
        op = self._take_op(*_COMPARE)
        if op is None:
            raise self._error("expected a comparison (<=, <, >=, >, ==, !=)")
        right = self._sum()
        mask = _COMPARE[op](left, right)
        second = self._take_op(*_COMPARE)
        if second is not None:
            mask = mask & _COMPARE[second](right, self._sum())
        return mask

    def _sum(self):
        value = self._product()
        while (op := self._take_op("+", "-")) is not None:
            value = _ARITH[op](value, self._product())
        return value

    def _product(self):
        value = self._unary()
        while (op := self._take_op("*", "/")) is not None:
            position = self.tokens[self.i - 1][2]
            divisor = self._unary()
            zero = np.asarray(divisor) == 0
            if op == "/" and np.any(zero):
                rows = f"in {int(zero.sum())} of {zero.size} rows" if zero.ndim else "everywhere"
                raise ValueError(
                    f"--where {self.expression!r}: division by zero at character {position + 1} "
                    f"(the divisor is 0 {rows})"
                )
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                value = _ARITH[op](value, divisor)
        return value

    def _unary(self):
        if self._take_op("-"):
            return -self._unary()
        return self._atom()

    def _atom(self):
        token = self._peek()
        if token is None:
            raise self._error("expected a number, a column or '('")
        kind, value, _ = token
        if kind == "number":
            self.i += 1
            return float(value)
        if kind == "name":
            if value not in self.columns:
                raise self._error(f"unknown column {value!r} (known: {sorted(self.columns)})")
            self.i += 1
            return np.asarray(self.columns[value], dtype=np.float64)
        if self._take_op("("):
            value = self._sum()
            if not self._take_op(")"):
                raise self._error("expected ')'")
            return value
        raise self._error(f"unexpected {value!r}")
