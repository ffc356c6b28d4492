#!/usr/bin/env python3
"""Checks the layering invariants ARCHITECTURE.md states, on the sources of server/src (test modules excluded).

Each rule names a module (a folder or a file under server/src), the crate modules it must not import, and text it
must not contain; and every management route's handler names its row of the role table (`Route::`). Exits 1 with
one line per violation. Run by scripts/test.sh; run it alone with `python3 scripts/check_layering.py`.
"""
import pathlib
import re
import sys

SRC = pathlib.Path(__file__).resolve().parent.parent / "server" / "src"
MODULES = {p.stem if p.is_file() else p.name for p in SRC.iterdir() if p.name not in ("lib.rs", "main.rs")}

# (module, modules it must not import, forbidden text patterns with the reason)
CLOCK = [(r"\bSystemTime\b", "reads the wall clock"), (r"Instant::now|monotonic_ms\(", "reads a clock")]
RULES = [
    ("llm", MODULES - {"llm"}, [(r"\b(actix|actix_web|awc|tokio)::", "uses a runtime or HTTP crate"),
                               (r"std::fs|std::net", "does I/O")] + CLOCK),
    ("framing", MODULES - {"framing"}, [(r"\b(actix|actix_web|awc|tokio)::", "uses a runtime or HTTP crate"),
                                       (r"std::fs|std::net", "does I/O")] + CLOCK),
    ("routing", {"pipeline", "actors", "http", "app"}, [(r"std::fs|std::net", "does I/O"),
                                                        (r"\b(Mutex|RwLock)\b", "takes a lock")] + CLOCK),
    ("providers", {"pipeline", "http", "actors", "app", "routing"}, [(r"\.send\(|send_body", "sends a request")]),
    ("pricing.rs", {"pipeline", "http", "actors", "routing", "providers"}, []),
    ("pipeline", {"actors", "http", "app"}, [(r"\bdo_send\b", "queues without bound on the hot path"),
                                              (r"sea_orm", "touches a database")]),
    ("http", set(), [(r"\bdo_send\b", "queues without bound on the hot path")]),
    ("access", {"pipeline", "http", "actors", "app", "routing", "providers", "shared_state"}, []),
    ("store", {"pipeline", "http", "actors", "app", "routing", "providers", "access", "limits", "shared_state"}, []),
    ("limits", {"pipeline", "http", "actors", "app", "routing", "providers", "access", "store", "shared_state"}, []),
    # budgets/ may read access/period.rs (pure durations) and nothing else of access/.
    ("budgets", {"pipeline", "http", "actors", "app", "routing", "providers", "store", "limits", "shared_state",
                 "logs"}, [(r"access::(?!period)", "uses access/ beyond its periods")]),
    ("shared_state", {"pipeline", "http", "actors", "app", "routing", "providers"}, []),
    ("logs", {"pipeline", "http", "actors", "app", "routing", "providers", "access", "store", "limits", "shared_state"}, []),
    # The Redis connections: a leaf that limits/, budgets/ and shared_state/ stand on.
    ("redis_pool.rs", MODULES - {"redis_pool"}, []),
    # W3C trace context: pure parsing and formatting, shared by the request path and the log's exporters.
    ("trace_context.rs", MODULES - {"trace_context", "hex"}, [(r"std::fs|std::net", "does I/O")] + CLOCK),
    ("hex.rs", MODULES - {"hex"}, []),
]
# The database: only store/ speaks SQL (SeaORM; rusqlite for the request log's SQLite batches); everything else
# gets domain values from it.
DB_CRATE = re.compile(r"\bsea_orm\b|\bsqlx\b|\brusqlite\b")
# actix-web request/response types: only the HTTP edge, the error mapping, and the stages that build the response.
ACTIX_TYPES = re.compile(r"\b(HttpRequest|HttpResponse|web::Payload|web::Data|ResponseError)\b")
ACTIX_ALLOWED = ("http/", "app.rs", "error.rs", "pipeline/call.rs")


def source(path):
    text = path.read_text()
    # Unit tests sit at the bottom of each file; they may use anything.
    cut = text.find("#[cfg(test)]")
    return text if cut < 0 else text[:cut]


def imported_modules(text):
    """First path segments after `crate::`, including those inside `use crate::{...};` groups."""
    found = set(re.findall(r"crate::([a-z_]+)", text))
    for group in re.findall(r"use crate::\{(.*?)\};", text, re.S):
        depth, token = 0, ""
        for ch in group + ",":
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == "," and depth == 0:
                found.add(re.split(r"::|\s", token.strip())[0])
                token = ""
                continue
            token += ch
    return {m for m in found if m}


def files(module):
    path = SRC / module
    return [path] if path.is_file() else sorted(path.rglob("*.rs"))


# Management routes: every handler a route is registered to names its `Route` (the role table's row), itself or
# through a helper it calls; only the routes that hand out credentials are open.
MANAGEMENT = ("http/keys.rs", "http/teams.rs", "http/users.rs", "http/login.rs", "http/customers.rs", "http/reports.rs")
OPEN_HANDLERS = {"login", "logout", "claim_token"}


def fn_bodies(text):
    """Top-level `fn` name -> its text up to the next top-level item."""
    parts = re.split(r"\n(?=(?:pub(?:\([a-z]+\))? )?(?:async )?fn |#\[derive|struct |const |pub fn configure)", text)
    bodies = {}
    for part in parts:
        m = re.match(r"(?:pub(?:\([a-z]+\))? )?(?:async )?fn (\w+)", part.strip())
        if m:
            bodies[m.group(1)] = part
    return bodies


def unguarded_management_handlers():
    problems = []
    for rel in MANAGEMENT:
        text = source(SRC / rel)
        bodies = fn_bodies(text)

        def guarded(name, seen=()):
            body = bodies.get(name, "")
            if "Route::" in body:
                return True
            called = set(re.findall(r"\b(\w+)\(", body)) & set(bodies) - {name} - set(seen)
            return any(guarded(c, seen + (name,)) for c in called)

        for handler in re.findall(r"\.to\((\w+)\)", text):
            if handler not in OPEN_HANDLERS and not guarded(handler):
                problems.append(f"{rel}: handler `{handler}` names no Route (every management route has a role rule)")
    return problems


def main():
    problems = []
    for module, banned, patterns in RULES:
        for f in files(module):
            text, rel = source(f), f.relative_to(SRC)
            for m in sorted(imported_modules(text) & banned):
                problems.append(f"{rel}: imports crate::{m} ({module} must not)")
            for pattern, why in patterns:
                if re.search(pattern, text):
                    problems.append(f"{rel}: {why} (`{pattern}`)")
    for f in sorted(SRC.rglob("*.rs")):
        rel = str(f.relative_to(SRC))
        if not rel.startswith(ACTIX_ALLOWED) and rel not in ("main.rs", "lib.rs") and ACTIX_TYPES.search(source(f)):
            problems.append(f"{rel}: uses actix-web request/response types outside http/, app.rs, error.rs, pipeline/call.rs")
    for f in sorted(SRC.rglob("*.rs")):
        rel = str(f.relative_to(SRC))
        if not rel.startswith("store/") and DB_CRATE.search(source(f)):
            problems.append(f"{rel}: uses the database crate outside store/ (all SQL lives in store/)")
    # Unsafe code: only the journal's file mapping (ARCHITECTURE.md, logs/).
    for f in sorted(SRC.rglob("*.rs")):
        rel = str(f.relative_to(SRC))
        if rel != "logs/journal.rs" and re.search(r"\bunsafe\s*(\{|fn\b|impl\b)", source(f)):
            problems.append(f"{rel}: unsafe code outside logs/journal.rs (the journal's mapping is the only unsafe)")
    problems += unguarded_management_handlers()
    for p in problems:
        print(p)
    if problems:
        sys.exit(1)
    print(f"layering ok ({len(RULES)} module rules, actix-web types, SQL and unsafe code confined)")


if __name__ == "__main__":
    main()
