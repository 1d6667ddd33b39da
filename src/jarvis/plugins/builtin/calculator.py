"""`/calc 2*(3+4)` and a `calculator` tool: arithmetic evaluated from the syntax tree, never `eval`."""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

from jarvis.plugins.hookspecs import hookimpl
from jarvis.plugins.types import Command, Context, Tool

PLUGIN_NAME = "Calculator"
PLUGIN_DESCRIPTION = "Safe arithmetic (/calc 2*(3+4), sqrt, sin, log, pi …)."

MAX_LENGTH = 500
MAX_EXPONENT = 10_000
MAX_DIGITS = 1_000

_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type, Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "sqrt": math.sqrt,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "asin": math.asin,
    "acos": math.acos,
    "atan": math.atan,
    "log": math.log,
    "log10": math.log10,
    "log2": math.log2,
    "exp": math.exp,
    "abs": abs,
    "round": round,
    "floor": math.floor,
    "ceil": math.ceil,
    "factorial": math.factorial,
    "min": min,
    "max": max,
}
_CONSTANTS = {"pi": math.pi, "e": math.e, "tau": math.tau}


class CalcError(ValueError):
    pass


def evaluate(expression: str) -> int | float:
    """The value of an arithmetic expression. Raises CalcError for anything else."""
    text = expression.strip().replace("^", "**").replace("×", "*").replace("÷", "/").replace(",", ".")
    if not text:
        raise CalcError("nothing to calculate")
    if len(text) > MAX_LENGTH:
        raise CalcError(f"expression longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise CalcError(f"not an arithmetic expression: {expression!r}") from exc
    return _eval(tree.body)


def _eval(node: ast.AST) -> int | float:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise CalcError(f"exponent larger than {MAX_EXPONENT}")
        try:
            result = _BINARY[type(node.op)](left, right)
        except ZeroDivisionError as exc:
            raise CalcError("division by zero") from exc
        except OverflowError as exc:
            raise CalcError("the result is too large") from exc
        if isinstance(result, int) and result.bit_length() > MAX_DIGITS * 4:
            raise CalcError("the result is too large")
        return result
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
        and len(node.args) <= 4
    ):
        args = [_eval(arg) for arg in node.args]
        if node.func.id == "factorial" and (not isinstance(args[0], int) or args[0] > 500):
            raise CalcError("factorial takes a whole number up to 500")
        try:
            return _FUNCTIONS[node.func.id](*args)
        except (ValueError, TypeError, OverflowError) as exc:
            raise CalcError(f"{node.func.id}: {exc}") from exc
    raise CalcError(f"{ast.unparse(node) if hasattr(ast, 'unparse') else 'that'} is not allowed in a calculation")


def _format(value: int | float) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)


def calc_command(args: str, _context: Context) -> str:
    try:
        return f"{args.strip()} = {_format(evaluate(args))}"
    except CalcError as exc:
        return f"Cannot calculate that: {exc}"


def calc_tool(arguments: dict, _context: Context) -> str:
    try:
        return _format(evaluate(str(arguments.get("expression", ""))))
    except CalcError as exc:
        return f"error: {exc}"


@hookimpl
def jarvis_commands() -> list[Command]:
    return [Command("calc", "evaluate arithmetic", calc_command, usage="EXPRESSION")]


@hookimpl
def jarvis_tools() -> list[Tool]:
    schema = {
        "type": "object",
        "properties": {"expression": {"type": "string", "description": "arithmetic such as 2*(3+4) or sqrt(2)"}},
        "required": ["expression"],
    }
    keywords = ("calculate", "compute", "sqrt", "percent", "rechne", "berechne", "prozent", "wurzel")
    return [Tool("calculator", "Evaluate an arithmetic expression exactly.", schema, calc_tool, keywords)]
