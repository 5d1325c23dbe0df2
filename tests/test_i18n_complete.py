"""French is complete, Dutch nearly so, and every catalogue is well formed.

Messages are extracted the way a translator's tools would: from the templates with
Babel and jinja2's extractor (the i18n extension, untrimmed, as the pages render),
and from the Python code of web/ by reading its syntax tree: literal arguments of
``gettext(request, ...)``, ``ngettext``, ``pgettext``, ``_``, ``N_`` and of the
wrappers that pass a parameter on to them (``translate``, ``_text``...), module
constants given to them, and the values of module-level dicts they look messages
up in. Each must have a French translation in the merged catalogue
(``web.ui.i18n.catalogue("fr")``); Dutch coverage is printed and fails below 90 %.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract
from babel.messages.pofile import PoFileError, read_po
from jinja2.ext import babel_extract

from web.ui import i18n

ROOT = Path(__file__).resolve().parent.parent
WEB = ROOT / "web"
TEMPLATES = WEB / "templates"
DUTCH_MINIMUM = 0.90
JINJA_OPTIONS = {"extensions": "jinja2.ext.i18n", "trimmed": "false"}
PERCENT = re.compile(r"%\((\w+)\)[#0 +-]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa]")
BRACES = re.compile(r"\{(\w+)\}")

MessageId = str | tuple[str, str]


@dataclass(frozen=True, slots=True)
class Found:
    id: MessageId
    context: str | None
    where: str

    @property
    def key(self) -> str:
        return self.id[0] if isinstance(self.id, tuple) else self.id


def template_messages() -> Iterator[Found]:
    for path in sorted(TEMPLATES.rglob("*")):
        if not path.is_file():
            continue
        with path.open("rb") as fh:
            for lineno, message, _comments, context in extract(
                babel_extract, fh, keywords=DEFAULT_KEYWORDS, options=JINJA_OPTIONS
            ):
                yield Found(message, context, f"{path.relative_to(ROOT)}:{lineno}")


# --- Python ------------------------------------------------------------------------------

BASE = {"gettext", "ngettext", "pgettext", "_", "N_"}


@dataclass(frozen=True, slots=True)
class Translator:
    """Where a function call carries its message (and plural, and context)."""

    message: int
    plural: int | None = None
    context: str | None = None
    context_arg: int | None = None


def _name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def base_translator(call: ast.Call) -> Translator | None:
    """``gettext(request, msg)`` (web.ui.render), ``translations(...).gettext(msg)``,
    ``ngettext`` likewise with a plural, ``pgettext(context, msg)``, ``_``/``N_(msg)``."""
    name = _name(call.func)
    bare = isinstance(call.func, ast.Name)
    if name in ("_", "N_"):
        return Translator(0)
    if name == "gettext":
        return Translator(1 if bare and len(call.args) >= 2 else 0)
    if name == "ngettext":
        return Translator(1, 2) if bare and len(call.args) >= 4 else Translator(0, 1)
    if name == "pgettext":
        return Translator(1, context_arg=0)
    return None


@dataclass
class Module:
    path: Path
    tree: ast.Module
    strings: dict[str, str] = field(default_factory=dict)
    tables: dict[str, list[str]] = field(default_factory=dict)
    wrappers: dict[str, Translator] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return str(self.path.relative_to(ROOT))


def _literal(node: ast.expr) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Call) and _name(node.func) == "N_" and node.args:
        return _literal(node.args[0])
    return None


def load_module(path: Path) -> Module:
    module = Module(path, ast.parse(path.read_text(encoding="utf-8")))
    for node in module.tree.body:
        target = value = None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        if not isinstance(target, ast.Name) or value is None:
            continue
        if (text := _literal(value)) is not None:
            module.strings[target.id] = text
        elif isinstance(value, ast.Dict):
            texts = [_resolve_value(module, v) for v in value.values]
            if texts and all(t is not None for t in texts):
                module.tables[target.id] = [t for t in texts if t is not None]
    _find_wrappers(module)
    return module


def _resolve_value(module: Module, node: ast.expr) -> str | None:
    text = _literal(node)
    if text is None and isinstance(node, ast.Name):
        text = module.strings.get(node.id)
    return text


FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


def _find_wrappers(module: Module) -> None:
    """Functions that hand one of their parameters to a translator are translators."""
    for func in ast.walk(module.tree):
        if not isinstance(func, FUNCTIONS):
            continue
        params = [a.arg for a in func.args.args if a.arg not in ("self", "cls")]
        for call in ast.walk(func):
            if not isinstance(call, ast.Call) or (base := base_translator(call)) is None:
                continue
            if base.message >= len(call.args):
                continue
            arg = call.args[base.message]
            if isinstance(arg, ast.Name) and arg.id in params:
                context = None
                if base.context_arg is not None and base.context_arg < len(call.args):
                    context = _resolve_value(module, call.args[base.context_arg])
                module.wrappers[func.name] = Translator(params.index(arg.id), context=context)


def _enclosing_iters(tree: ast.AST, target: ast.AST) -> list[ast.expr]:
    """The iterables of the loops and comprehensions around ``target``."""
    found: list[ast.expr] = []

    def visit(node: ast.AST, iters: list[ast.expr]) -> bool:
        if node is target:
            found.extend(iters)
            return True
        extra: list[ast.expr] = []
        if isinstance(node, ast.For):
            extra = [node.iter]
        elif isinstance(node, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            extra = [g.iter for g in node.generators]
        return any(visit(child, iters + extra) for child in ast.iter_child_nodes(node))

    visit(tree, [])
    return found


def python_messages(
    translators: dict[str, Translator], modules: list[Module]
) -> tuple[list[Found], list[str]]:
    """(messages, places where a message could not be told statically)."""
    found: list[Found] = []
    dynamic: list[str] = []
    for module in modules:
        scopes: dict[int, list[ast.AST]] = {}
        for scope in ast.walk(module.tree):
            if isinstance(scope, (*FUNCTIONS, ast.Lambda)):
                for node in ast.walk(scope):
                    scopes.setdefault(id(node), []).append(scope)
        for call in ast.walk(module.tree):
            if not isinstance(call, ast.Call):
                continue
            spec = base_translator(call) or translators.get(_name(call.func) or "")
            if spec is None or spec.message >= len(call.args):
                continue
            where = f"{module.where}:{call.lineno}"
            context = spec.context
            if spec.context_arg is not None and spec.context_arg < len(call.args):
                context = _resolve_value(module, call.args[spec.context_arg])
            arg = call.args[spec.message]
            text = _resolve_value(module, arg)
            if text is not None:
                plural = None
                if spec.plural is not None and spec.plural < len(call.args):
                    plural = _resolve_value(module, call.args[spec.plural])
                found.append(Found((text, plural) if plural else text, context, where))
                continue
            around = scopes.get(id(call), [])
            names = {n.id for n in ast.walk(arg) if isinstance(n, ast.Name)}
            for loop in _enclosing_iters(module.tree, call):
                names |= {n.id for n in ast.walk(loop) if isinstance(n, ast.Name)}
            if isinstance(arg, ast.Name):  # a local set from a table: done = DONE.get(...)
                for scope in around:
                    for node in ast.walk(scope):
                        if isinstance(node, ast.Assign) and any(
                            isinstance(t, ast.Name) and t.id == arg.id for t in node.targets
                        ):
                            names |= {n.id for n in ast.walk(node.value) if isinstance(n, ast.Name)}
            tables = [t for t in names if t in module.tables]
            for table in tables:
                found.extend(Found(text, context, where) for text in module.tables[table])
            forwarded = isinstance(arg, ast.Name) and any(
                arg.id in {a.arg for a in scope.args.args}  # type: ignore[attr-defined]
                for scope in around
            )
            if not tables and not forwarded:
                dynamic.append(f"{where} {ast.unparse(call)[:80]}")
    return found, dynamic


def all_messages() -> tuple[list[Found], list[str]]:
    modules = [load_module(p) for p in sorted(WEB.rglob("*.py"))]
    translators: dict[str, Translator] = {}
    for module in modules:
        translators.update(module.wrappers)
    for name in BASE:
        translators.pop(name, None)
    py, dynamic = python_messages(translators, modules)
    return list(template_messages()) + py, dynamic


def translated(catalogue: Catalog, message: Found) -> bool:
    entry = catalogue.get(message.key, context=message.context)
    if entry is None or entry.fuzzy:
        return False
    strings = entry.string if isinstance(entry.string, tuple) else (entry.string,)
    return bool(strings) and all(strings)


def untranslated(lang: str) -> tuple[list[Found], int]:
    messages, _ = all_messages()
    catalogue = i18n.catalogue(lang)
    unique = {(m.key, m.context): m for m in messages}
    return [m for m in unique.values() if not translated(catalogue, m)], len(unique)


# --- tests ---------------------------------------------------------------------------------


def test_extraction_finds_messages_in_templates_and_in_python() -> None:
    messages, _ = all_messages()
    places = {m.where.split(":")[0] for m in messages}
    assert any(p.startswith("web/templates/") for p in places)
    assert any(p.endswith(".py") for p in places)
    keys = {(m.key, m.context) for m in messages}
    assert ("Skip to content", None) in keys  # base.html
    assert ("Something went wrong", None) in keys  # error.html
    assert not translated(Catalog(locale="fr"), Found("Skip to content", None, "-"))


def test_the_python_extractor_follows_wrappers_constants_and_tables(tmp_path: Path) -> None:
    source = tmp_path / "sample.py"
    source.write_text(
        "CONTEXT = 'panel'\n"
        "GONE = 'This link is gone.'\n"
        "TABLE = {'a': 'First', 'b': N_('Second')}\n"
        "def translate(request, message):\n"
        "    return translations(request).pgettext(CONTEXT, message)\n"
        "def page(request, code, n):\n"
        "    gettext(request, 'Hello')\n"
        "    ngettext(request, '%(num)s room', '%(num)s rooms', n)\n"
        "    translate(request, GONE)\n"
        "    gettext(request, TABLE.get(code, 'x'))\n"
        "    return {k: translate(request, v) for k, v in TABLE.items()}\n"
        "def other(request, thing):\n"
        "    return gettext(request, thing.label)\n",
        encoding="utf-8",
    )
    module = load_module(source)
    module.path = ROOT / "sample.py"
    found, dynamic = python_messages(dict(module.wrappers), [module])
    got = {(f.id, f.context) for f in found}
    assert ("Hello", None) in got
    assert (("%(num)s room", "%(num)s rooms"), None) in got
    assert ("This link is gone.", "panel") in got
    assert {("First", None), ("Second", None), ("First", "panel"), ("Second", "panel")} <= got
    assert [d.split(" ", 1)[0] for d in dynamic] == ["sample.py:13"]


def test_every_message_has_a_french_translation(capsys: pytest.CaptureFixture[str]) -> None:
    missing, total = untranslated("fr")
    _, dynamic = all_messages()
    with capsys.disabled():
        print(f"\ni18n: {total} messages, French {total - len(missing)}/{total}")
        if dynamic:
            print(f"i18n: {len(dynamic)} translated calls with a message not readable statically:")
            print("\n".join(f"  {d}" for d in dynamic))
    listing = "\n".join(
        f"  {m.where}: {m.key!r}" + (f" (context {m.context})" if m.context else "")
        for m in sorted(missing, key=lambda m: m.where)
    )
    assert not missing, f"{len(missing)} messages without French:\n{listing}"


def test_dutch_covers_at_least_ninety_percent(capsys: pytest.CaptureFixture[str]) -> None:
    missing, total = untranslated("nl")
    coverage = (total - len(missing)) / total
    with capsys.disabled():
        print(f"\ni18n: Dutch {total - len(missing)}/{total} = {coverage:.1%}")
        for lang in ("fr", "nl"):
            if found := conflicts(lang):
                print(f"i18n: {lang} messages translated differently by two areas:")
                print("\n".join(found))
    listing = "\n".join(f"  {m.where}: {m.key!r}" for m in sorted(missing, key=lambda m: m.where))
    assert coverage >= DUTCH_MINIMUM, f"Dutch below {DUTCH_MINIMUM:.0%}; missing:\n{listing}"


def conflicts(lang: str) -> list[str]:
    """Messages two areas translate differently (the merged catalogue keeps the last)."""
    seen: dict[tuple[str, str | None], tuple[str, object]] = {}
    found = []
    for path in sorted((WEB / "locale" / lang / "LC_MESSAGES").glob("*.po")):
        with path.open("rb") as fh:
            for m in read_po(fh, locale=lang):
                if not m.id or not m.string:
                    continue
                key = (m.id if isinstance(m.id, str) else m.id[0], m.context)
                first = seen.setdefault(key, (path.name, m.string))
                if first[1] != m.string:
                    found.append(f"  {key[0]!r}: {first[0]} {first[1]!r}, {path.name} {m.string!r}")
    return found


def po_files() -> list[Path]:
    return sorted((WEB / "locale").glob("*/LC_MESSAGES/*.po"))


PO_LINE = re.compile(
    r'^(?:(msgctxt|msgid|msgid_plural|msgstr(?:\[\d+\])?)\s+)?"(?:[^"\\]|\\.)*"\s*$'
)


def po_syntax_errors(text: str) -> Iterator[str]:
    """What Babel's lenient reader lets through and msgfmt refuses: a malformed line
    (an unterminated string, an unknown keyword) and a message defined twice."""
    seen: dict[tuple[str, str], int] = {}
    context, msgid, start, keyword = "", "", 0, ""
    for lineno, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = PO_LINE.match(stripped)
        if match is None:
            yield f"line {lineno}: not a PO line: {stripped[:60]!r}"
            continue
        value = stripped[stripped.index('"') + 1 : stripped.rindex('"')]
        if match.group(1):
            keyword = match.group(1)
        if match.group(1) == "msgctxt":
            context = value
        elif match.group(1) == "msgid":
            msgid, start = value, lineno
        elif match.group(1) is None and keyword == "msgid":
            msgid += value
        elif match.group(1) and match.group(1).startswith("msgstr"):
            if msgid and match.group(1) in ("msgstr", "msgstr[0]"):
                if (context, msgid) in seen:
                    yield f"line {start}: {msgid[:60]!r} is defined twice (line {seen[(context, msgid)]})"
                seen.setdefault((context, msgid), start)
            if match.group(1) in ("msgstr", "msgstr[0]"):
                context = ""


@pytest.mark.parametrize("path", po_files(), ids=lambda p: f"{p.parts[-3]}/{p.name}")
def test_catalogue_parses_and_keeps_placeholders(path: Path) -> None:
    errors = list(po_syntax_errors(path.read_text(encoding="utf-8")))
    assert not errors, f"{path.relative_to(ROOT)}:\n" + "\n".join(errors)
    if shutil.which("msgfmt"):  # GNU gettext, when the machine has it, has the last word
        proc = subprocess.run(
            ["msgfmt", "-o", os.devnull, str(path)], capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 0, proc.stderr
    with path.open("rb") as fh:
        try:
            catalogue = read_po(fh, locale=path.parts[-3], abort_invalid=True)
        except PoFileError as exc:
            pytest.fail(f"{path.relative_to(ROOT)}: {exc}")
    problems = [
        f"{path.relative_to(ROOT)}:{message.lineno}: {problem}"
        for message in catalogue
        if message.id and message.string
        for problem in placeholder_problems(message.id, message.string)
    ]
    assert not problems, "\n".join(problems)


def placeholder_problems(msgid: MessageId, msgstr: str | tuple[str, ...]) -> Iterator[str]:
    ids = msgid if isinstance(msgid, tuple) else (msgid,)
    strings = msgstr if isinstance(msgstr, tuple) else (msgstr,)
    for pattern in (PERCENT, BRACES):
        wanted = [set(pattern.findall(i)) for i in ids]
        every = set().union(*wanted)
        for index, text in enumerate(strings):
            if not text:
                continue
            have = set(pattern.findall(text))
            if have - every:
                yield f"{ids[0]!r}: {text!r} adds {sorted(have - every)}"
            # A singular translation may spell out "one"; the others keep every name.
            needed = wanted[-1] if len(ids) > 1 and index > 0 else wanted[0]
            if len(ids) == 1 and needed - have:
                yield f"{ids[0]!r}: {text!r} loses {sorted(needed - have)}"
            elif len(ids) > 1 and index > 0 and needed - have:
                yield f"{ids[-1]!r}: {text!r} loses {sorted(needed - have)}"
    # Templates format every message (jinja2's newstyle gettext): a translation must
    # survive %-formatting whenever the English does.
    for source, text in zip(ids * len(strings), strings, strict=False):
        values = dict.fromkeys(PERCENT.findall(source), 1)
        try:
            source % values
        except (ValueError, TypeError, KeyError):
            continue
        try:
            text % values
        except (ValueError, TypeError, KeyError) as exc:
            yield f"{source!r}: {text!r} breaks %-formatting ({exc})"


def test_a_broken_catalogue_is_refused() -> None:
    good = 'msgctxt "panel"\nmsgid "Book"\nmsgstr "Réserver"\n\nmsgid ""\n"Book"\nmsgstr "x"\n'
    assert list(po_syntax_errors(good)) == []
    assert list(po_syntax_errors('msgid "Book"\nmsgstr "Réserver\n'))
    assert list(po_syntax_errors('msgid "Book"\nmsgstrr "x"\n'))
    assert list(po_syntax_errors('msgid "Book"\nmsgstr "x"\n\nmsgid "Book"\nmsgstr "y"\n'))


def test_the_placeholder_check_catches_lost_and_invented_names() -> None:
    assert list(placeholder_problems("%(room)s is free", "%(room)s est libre")) == []
    assert list(placeholder_problems("Ends at {time}", "Se termine à {time}")) == []
    assert list(placeholder_problems("%(room)s is free", "La salle est libre"))
    assert list(placeholder_problems("Ends at {time}", "Se termine à {heure}"))
    assert list(placeholder_problems("100%% free", "100% libre"))
    plural = ("%(num)s hour", "%(num)s hours")
    assert list(placeholder_problems(plural, ("une heure", "%(num)s heures"))) == []
    assert list(placeholder_problems(plural, ("%(num)s heure", "heures")))
