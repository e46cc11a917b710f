"""Finding checks by name without importing every module that might hold one.

Sites keep hundreds of checks in dozens of modules; running one of them must not
import all of them. The source of each candidate module is scanned for
`@monitor_command` definitions and only the module that defines the wanted check is
imported. A module the scan cannot read (no source, unusual decorator use) is
imported as a last resort, so nothing registered is ever missed.
"""

from __future__ import annotations

import os

from accre_monitor.errors import UserError
from accre_monitor.registry import REGISTRY, is_auditor
from accre_monitor.util import import_module

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from accre_monitor.registry import CheckFunction

BUILTIN_PACKAGE = "accre_monitor.checks"
ENTRY_POINT_GROUP = "accre_monitor.checks"


def module_files(module_name: str) -> Iterator[tuple[str, str | None]]:
    """(module name, source path or None) for a module, or for every module of a package."""
    if module_name == BUILTIN_PACKAGE:
        # Its directory is known from the package itself (a one-line module, which a check
        # found in it imports anyway), without importlib.util on every run.
        import accre_monitor.checks

        yield from package_files(module_name, accre_monitor.checks.__path__)
        return
    from importlib.util import find_spec

    try:
        spec = find_spec(module_name)
    except ModuleNotFoundError:
        spec = None
    if spec is None:
        raise UserError(
            f"check module {module_name} not found (named in check_modules "
            "or by an accre_monitor.checks entry point)"
        )
    if spec.submodule_search_locations:
        yield from package_files(module_name, spec.submodule_search_locations)
    else:
        origin = spec.origin if spec.origin and spec.origin.endswith(".py") else None
        yield module_name, origin


def package_files(package: str, directories: Iterable[str]) -> Iterator[tuple[str, str]]:
    """(module name, source path) for every public module in a package's directories."""
    seen = set()
    for directory in directories:
        try:
            entries = sorted(os.listdir(directory))
        except OSError:
            continue
        for entry in entries:
            stem, ext = os.path.splitext(entry)
            if ext == ".py" and not stem.startswith("_") and stem not in seen:
                seen.add(stem)
                yield f"{package}.{stem}", os.path.join(directory, entry)


def read_source(path: str | None) -> bytes | None:
    if path is None:
        return None
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return None


def defines_check(source: bytes, name: str) -> bool:
    """Whether `source` has `def name(` right under a `@...monitor_command` decorator.

    A plain byte search: cheaper than a regex (or `ast`) on every run, and exact enough,
    since a miss only costs the fallback import of the modules that mention the name.
    A decorator's arguments may span lines (`@monitor_command(\n options=[...],\n)`).
    """
    needle = b"def " + name.encode() + b"("
    start = source.find(needle)
    while start != -1:
        line_start = source.rfind(b"\n", 0, start) + 1
        if source[line_start:start].strip(b" \t") in (b"", b"async ") and _decorated(
            source[:line_start].rstrip(b"\n").split(b"\n")
        ):
            return True
        start = source.find(needle, start + 1)
    return False


def _decorated(above: list[bytes]) -> bool:
    """Whether the decorators ending at the last of these lines include `monitor_command`.

    Read upwards; lines inside a decorator's brackets are skipped by counting brackets.
    """
    depth = 0
    while above:
        line = above.pop().strip()
        depth += sum(line.count(c) for c in (b")", b"]", b"}"))
        depth -= sum(line.count(c) for c in (b"(", b"[", b"{"))
        if depth > 0:
            continue
        if depth < 0 or not line.startswith(b"@"):
            return False
        if line[1:].split(b"(")[0].strip().endswith(b"monitor_command"):
            return True
    return False


def declared_checks(path: str | None) -> list[str] | None:
    """Names of the checks a source file defines (for tests and tools), None when unreadable."""
    source = read_source(path)
    if source is None:
        return None
    names = []
    for line in source.split(b"\n"):
        stripped = line.strip()
        for prefix in (b"def ", b"async def "):
            if stripped.startswith(prefix) and b"(" in stripped:
                name = stripped[len(prefix) :].split(b"(")[0].strip().decode()
                if defines_check(source, name):
                    names.append(name)
    return names


def entry_point_modules() -> list[str]:
    """Modules advertised by installed distributions under `accre_monitor.checks`."""
    from importlib.metadata import entry_points

    return [ep.value.split(":")[0] for ep in entry_points(group=ENTRY_POINT_GROUP)]


def candidate_modules(config_modules: list[str], with_entry_points: bool) -> Iterator[str]:
    """Where checks live, in order of precedence: built-in, config, entry points."""
    yield BUILTIN_PACKAGE
    yield from config_modules
    if with_entry_points:
        yield from entry_point_modules()


def canonical(name: str) -> str:
    """Check names are Python identifiers; `disk-usage` on the command line means `disk_usage`."""
    return name.replace("-", "_")


def find_check(name: str, config_modules: list[str], auditor: bool = False) -> CheckFunction | None:
    """The check called `name`, importing only the module that defines it."""
    name = canonical(name)
    if is_auditor(name) and not auditor:
        return None
    unreadable: list[str] = []  # and those the scan may have misread: imported last
    needle = b"def " + name.encode() + b"("
    for with_entry_points in (False, True):
        roots = candidate_modules(config_modules, with_entry_points)
        if with_entry_points:
            roots = (m for m in roots if m != BUILTIN_PACKAGE and m not in config_modules)
        for root in roots:
            for module_name, path in module_files(root):
                source = read_source(path)
                if source is None:
                    unreadable.append(module_name)
                elif defines_check(source, name):
                    import_module(module_name)
                    if name in REGISTRY:
                        return REGISTRY[name]
                elif needle in source and b"monitor_command" in source:
                    unreadable.append(module_name)  # a use of the decorator the scan missed
        for module_name in unreadable:
            import_module(module_name)
            if name in REGISTRY:
                return REGISTRY[name]
        unreadable.clear()
    return None


def check_names(config_modules: list[str], auditor: bool = False) -> list[str]:
    """The name of every check, from the modules' sources: nothing is imported (for the
    suggestions after a mistyped name, where a site's modules must not run)."""
    names = set(REGISTRY)
    try:
        roots = list(candidate_modules(config_modules, with_entry_points=True))
    except Exception:  # a broken distribution's metadata: the others still count
        roots = list(candidate_modules(config_modules, with_entry_points=False))
    for root in roots:
        try:
            names.update(*(declared_checks(path) or () for _, path in module_files(root)))
        except UserError:
            continue
    return sorted(name for name in names if auditor or not is_auditor(name))


def all_checks(
    config_modules: list[str], auditor: bool = False
) -> tuple[dict[str, CheckFunction], list[str]]:
    """Every check (for help), importing every module; also the import failures, as messages."""
    problems: list[str] = []
    try:
        roots = list(candidate_modules(config_modules, with_entry_points=True))
    except Exception as exc:  # a broken distribution's metadata must not break help
        problems.append(f"cannot read entry points: {exc}")
        roots = list(candidate_modules(config_modules, with_entry_points=False))
    for root in roots:
        try:
            modules = [module_name for module_name, _ in module_files(root)]
        except UserError as exc:
            problems.append(str(exc))
            continue
        for module_name in modules:
            try:
                import_module(module_name)
            except Exception as exc:
                problems.append(f"cannot import check module {module_name}: {exc}")
    checks = {
        name: func for name, func in sorted(REGISTRY.items()) if auditor or not is_auditor(name)
    }
    return checks, problems
