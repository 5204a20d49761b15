"""The offline `docstrings` source of the fetch stage.

The offline `docstrings` source turns the API documentation of installed, pinned Python packages
into a retrieval corpus: each public function or class with a docstring becomes one document, its
one-line summary becomes the query, and the rest of the docstring becomes the page. Source files
are parsed with `ast` (nothing is imported), so the corpus depends only on the package versions
pinned in the lock file.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from vdr.data.corpus import normalise_whitespace

SKIPPED_DIRECTORIES = {"tests", "test", "testing", "_testing", "_vendored", "_vendor", "externals", "__pycache__"}


@dataclass(frozen=True)
class DocstringEntry:
    doc_id: str  # fully qualified name, e.g. "numpy.linalg._linalg.norm"
    group: str  # the package the module sits in, e.g. "numpy.linalg"; the unit of the train/eval split
    title: str  # what the page heading shows, e.g. "norm(x, ord, axis, keepdims)"
    summary: str  # first paragraph of the docstring: the query
    body: str  # the rest of the docstring: the page text


def package_root(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(
            f"fetch.packages: '{package}' is not an installed Python package; "
            "install it (it must be pinned in requirements.lock) or remove it from params.yaml"
        )
    return Path(list(spec.submodule_search_locations)[0])


@functools.cache
def _distributions() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()  # reads every installed distribution's files: once


def package_version(package: str) -> str:
    for distribution in _distributions().get(package, [package]):
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "unknown"


def _signature(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> str:
    if isinstance(node, ast.ClassDef):
        init = next((n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
        if init is None:
            return node.name
        node_args = init.args
    else:
        node_args = node.args
    names = [a.arg for a in node_args.posonlyargs + node_args.args + node_args.kwonlyargs]
    names = [n for n in names if n not in ("self", "cls")]
    if node_args.vararg:
        names.append("*" + node_args.vararg.arg)
    if node_args.kwarg:
        names.append("**" + node_args.kwarg.arg)
    return f"{node.name}({', '.join(names)})"


def _split_docstring(docstring: str) -> tuple[str, str]:
    paragraphs = docstring.strip().split("\n\n", 1)
    summary = " ".join(paragraphs[0].split())
    body = paragraphs[1].strip() if len(paragraphs) > 1 else ""
    return summary, body


def iter_module_docstrings(path: Path, module: str):
    """Yield (node, docstring) for public top-level functions, classes and public methods."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, UnicodeDecodeError, ValueError):
        return
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
            yield f"{module}.{node.name}", node
            if isinstance(node, ast.ClassDef):
                for child in node.body:
                    if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) and not child.name.startswith("_"):
                        yield f"{module}.{node.name}.{child.name}", child


def docstring_entries(
    packages: list[str], min_summary_chars: int, max_summary_chars: int, min_body_chars: int, max_body_chars: int
) -> tuple[list[DocstringEntry], dict[str, int]]:
    """All usable docstring entries of `packages`, in a deterministic order, and why others were dropped."""
    dropped = {"no_docstring": 0, "summary_length": 0, "short_body": 0, "summary_on_page": 0, "duplicate": 0}
    entries: list[DocstringEntry] = []
    seen_summaries: set[str] = set()
    seen_bodies: set[str] = set()
    for package in packages:
        root = package_root(package)
        for path in sorted(root.rglob("*.py")):
            relative = path.relative_to(root.parent)
            if SKIPPED_DIRECTORIES.intersection(relative.parts[:-1]) or path.name.startswith("test_"):
                continue
            module_parts = list(relative.with_suffix("").parts)
            if module_parts[-1] == "__init__":
                module_parts = module_parts[:-1]
            module = ".".join(module_parts)
            group = ".".join(module_parts[:2])
            for doc_id, node in iter_module_docstrings(path, module):
                docstring = ast.get_docstring(node, clean=True)
                if not docstring:
                    dropped["no_docstring"] += 1
                    continue
                summary, body = _split_docstring(docstring)
                if not (min_summary_chars <= len(summary) <= max_summary_chars):
                    dropped["summary_length"] += 1
                    continue
                if len(body) < min_body_chars:
                    dropped["short_body"] += 1
                    continue
                body = body[:max_body_chars]
                if normalise_whitespace(summary) in normalise_whitespace(body):
                    dropped["summary_on_page"] += 1
                    continue
                summary_key, body_key = normalise_whitespace(summary), normalise_whitespace(body)
                if summary_key in seen_summaries or body_key in seen_bodies:
                    dropped["duplicate"] += 1
                    continue
                seen_summaries.add(summary_key)
                seen_bodies.add(body_key)
                entries.append(DocstringEntry(doc_id, group, _signature(node), summary, body))
    return entries, dropped
