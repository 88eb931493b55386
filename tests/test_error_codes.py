"""Every error code the project raises is a member of ``ErrorCode``, and the README documents each.

The codes are found in the source, not at run time: string literals passed as ``code=`` /
``error_code=`` (or assigned to a name of that name: a class's ``code = "..."``, a local), the code
argument of ``ApiError(status, code, message)`` and ``error_body(code, message)``, and the values of
a ``codes`` mapping (the HTTP-level codes of ``api.errors``).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from foundry.error_codes import ErrorCode

REPO_ROOT = Path(__file__).resolve().parents[1]
SOURCE_ROOTS = ("foundry", "api", "training", "provenance", "worker")
CODE_NAMES = {"code", "error_code"}


def _strings(node: ast.AST) -> list[str]:
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def _callee(call: ast.Call) -> str:
    return call.func.id if isinstance(call.func, ast.Name) else getattr(call.func, "attr", "")


def codes_in(tree: ast.AST) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            for keyword in node.keywords:
                if keyword.arg in CODE_NAMES:
                    found.update(_strings(keyword.value))
            position = {"ApiError": 1, "error_body": 0}.get(_callee(node))
            if position is not None and len(node.args) > position:
                found.update(_strings(node.args[position]))
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = {target.id for target in targets if isinstance(target, ast.Name)}
            if node.value is not None and names & CODE_NAMES and not isinstance(node.value, ast.Call):
                found.update(_strings(node.value))  # (a Call is a schema field: ``code: str = Field(...)``)
            if node.value is not None and "codes" in names and isinstance(node.value, ast.Dict):
                found.update(s for value in node.value.values for s in _strings(value))
    return found


def raised_codes() -> dict[str, set[str]]:
    """code -> the files that raise it."""
    where: dict[str, set[str]] = {}
    for root in SOURCE_ROOTS:
        for path in sorted((REPO_ROOT / root).rglob("*.py")):
            for code in codes_in(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
                where.setdefault(code, set()).add(str(path.relative_to(REPO_ROOT)))
    return where


def test_every_raised_code_is_in_the_list():
    unlisted = {code: sorted(files) for code, files in raised_codes().items() if code not in set(ErrorCode)}
    assert unlisted == {}, "add these to foundry.error_codes.ErrorCode and to the README's table"


def test_the_list_has_no_code_nothing_raises():
    stale = set(ErrorCode) - set(raised_codes())
    assert stale == set(), "remove these from ErrorCode (and the README) or raise them"


def test_the_scanner_sees_each_way_of_raising_a_code():
    sample = ast.parse("""
raise Conflict("x", code="a_code")
fail(code="b_code" if flag else "c_code")
code = exc.code or "d_code"
class E(FoundryError):
    code = "e_code"
raise ApiError(403, "f_code", "no")
error_body("g_code", "no")
codes = {400: "h_code"}
""")
    assert codes_in(sample) == {f"{letter}_code" for letter in "abcdefgh"}


def test_the_readme_documents_every_code():
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\|\s*`([a-z0-9_]+)`\s*\|\s*([^|]+?)\s*\|\s*([^|]+?)\s*\|\s*$", readme, flags=re.MULTILINE)
    documented = {code: (status, meaning) for code, status, meaning in rows}
    assert set(ErrorCode) - set(documented) == set(), "document these in the README's error code table"
    assert set(documented) - set(ErrorCode) == set(), "the README documents codes that are not in ErrorCode"
    assert all(meaning for _status, meaning in documented.values())
