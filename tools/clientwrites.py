#!/usr/bin/env python3
"""clientwrites: the client's fields are written only by the client module.

include/client/client.h says the client's protocol position (pending_ready, in_copy, ...) is
written only by src/client/; the other modules report events through the client module's verbs
(client_on_copy_started(), ...). This check keeps it so. It reads the field names of
struct client from that header and looks, in every .c and .h file outside src/client/ and
include/client/, for a write to one of them:

    c->field = ...   c->field.part += ...   c->field[i] = ...   c->field++   --c->field

through a variable the same function declares as `struct client *` (parameter or local), or
through any `->client->` / `.client->` chain. Writes through a pointer the field holds
(c->server->state = ...) are writes to that other object and are not counted. Handing a field's
address out counts as a write too (f(&c->params), p = &c->pstmts), unless it goes to a parameter
a prototype (in include/ or the same file) declares const, or to a const pointer. An array
member (c->addr) is its own address: it counts when it goes to a non-const parameter, as the
first argument of a C library call that writes there (snprintf, memcpy, ...), or into a pointer
to non-const. Two embedded members belong to other modules and are not counted when their
address is passed: conn (the socket, driven through ev/conn.h) and node (the pool's state
lists). A write is allowed only when ALLOWED lists it with its reason.

Exit 1, with file:line for each write not allowed; 0 when there is none.

Usage: tools/clientwrites.py [ROOT] [-v]   (ROOT defaults to the parent of tools/; -v: the fields
and the allowed writes too)
"""
import os
import re
import sys

HEADER = os.path.join("include", "client", "client.h")
OWNER_DIRS = (os.path.join("src", "client"), os.path.join("include", "client"))

# Writes from outside the client module that are right where they are: (file, field, why).
# Keep this list short; every entry says why the client module cannot do the write itself.
ALLOWED = [
    # The pool's state verbs are the one place client states and lists change (pool/pool.h).
    ("src/pool/pool.c", "state", "client_set_state(): the pool owns client states"),
    ("src/pool/pool.c", "pool", "pool_client_move(): the pool owns which pool a client is in"),
    ("src/pool/pool.c", "server",
     "link_client(), pool_release_server(), pool_unlink_for_replay(): the pool owns links"),
    ("src/pool/pool.c", "target",
     "pool_retarget()/pool_client_move(): a waiting client's member keys the pool's wait counters"),
]

ASSIGN_OPS = r"(?:<<=|>>=|[-+*/%&|^]?=(?!=)|\+\+|--)"


def strip_code(text):
    """Comments, string and character literals blanked out; newlines kept for line numbers."""
    out = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif ch in "\"'":
            j = i + 1
            while j < n and text[j] != ch and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(ch + re.sub(r"[^\n]", " ", text[i + 1:j - 1]) + ch if j - i >= 2 else ch)
            i = j
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def client_fields(root):
    """Names of struct client's members (the declarators of its top level) in client.h."""
    with open(os.path.join(root, HEADER), encoding="utf-8") as fh:
        text = strip_code(fh.read())
    m = re.search(r"\bstruct\s+client\s*\{", text)
    if not m:
        sys.exit(f"clientwrites: no struct client in {HEADER}")
    depth, body, i = 1, [], m.end()
    while depth:
        ch = text[i]
        depth += ch == "{"
        depth -= ch == "}"
        if depth == 1 and ch not in "{}":
            body.append(ch)  # nested struct bodies drop out: their declarators stay
        i += 1
    fields, arrays = set(), set()
    for decl in "".join(body).split(";"):
        for part in decl.split(","):
            bare = re.sub(r"\[[^\]]*\]|:\s*\d+", "", part)  # arrays, bit-fields
            names = re.findall(r"[A-Za-z_]\w*", bare)
            if names:
                fields.add(names[-1])
                if "[" in part:
                    arrays.add(names[-1])
    return fields, arrays


def scopes(text):
    """(start, end) of each top-level brace block with the head before it (a function with its
    parameters), and the file scope's own text."""
    spans, depth, head = [], 0, 0
    start = 0
    for i, ch in enumerate(text):
        if ch == "{":
            if depth == 0:
                start = head
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                spans.append((start, i + 1))
                head = i + 1
        elif ch == ";" and depth == 0:
            head = i + 1
    return spans


DECL_RE = re.compile(r"\bstruct\s+client\s*\*\s*(?:const\s+)?([A-Za-z_]\w*)"
                     r"((?:\s*=[^,;(){}]*)?(?:\s*,\s*\*\s*[A-Za-z_]\w*(?:\s*=[^,;(){}]*)?)*)")


def client_vars(scope):
    names = set()
    for m in DECL_RE.finditer(scope):
        names.add(m.group(1))
        names.update(re.findall(r",\s*\*\s*([A-Za-z_]\w*)", m.group(2)))
    return names


def depth0(text):
    """text with every brace block's inside blanked: prototypes and function heads remain."""
    out, depth = [], 0
    for ch in text:
        if ch == "}":
            depth -= 1
        out.append(ch if depth == 0 or ch == "\n" else " ")
        if ch == "{":
            depth += 1
    return "".join(out)


PROTO_RE = re.compile(r"\b([A-Za-z_]\w*)\s*\(([^()]*)\)")


def prototypes(text, into):
    """For each function declared or defined at file level: which parameters point to const."""
    for m in PROTO_RE.finditer(depth0(text)):
        params = [p.strip() for p in m.group(2).split(",")]
        if not params or not all(re.search(r"[A-Za-z_]\w*\s*(?:\[[^\]]*\])?$|^\.\.\.$", p)
                                 for p in params):
            continue  # a call, an attribute or a macro, not a parameter list
        into[m.group(1)] = [p == "..." or const_pointee(p) for p in params]


def const_pointee(decl):
    star = decl.find("*")
    return star >= 0 and re.search(r"\bconst\b", decl[:star]) is not None


# C library calls that only read what an address points to.
LIBC_READS = {"memcmp", "strcmp", "strncmp", "strlen", "strnlen", "strchr", "strcasecmp",
              "strncasecmp", "memchr", "sizeof", "offsetof"}
# Members whose address other modules may hand on: why.
EMBEDDED = {
    "conn": "the client's socket, driven through ev/conn.h",
    "node": "the client's place on its state list: the pool's",
}


# C library calls that write through their first argument.
LIBC_WRITES = {"memcpy", "memmove", "memset", "strcpy", "strncpy", "strcat", "strncat", "sprintf",
               "snprintf", "vsnprintf", "strlcpy", "explicit_bzero", "OPENSSL_cleanse"}


def address_is_write(text, pos, protos, unknown=True):
    """Whether &... at pos (or an array member, which is its address) hands out a pointer
    something may write through; unknown: the answer for a call of a function with no
    prototype in sight (a macro, the C library)."""
    depth, commas, i = 0, 0, pos - 1
    while i >= 0:
        ch = text[i]
        if ch in ")]":
            depth += 1
        elif ch in "([":
            if depth == 0:
                if ch == "[":
                    return True
                m = re.search(r"([A-Za-z_]\w*)\s*$", text[:i])
                name = m.group(1) if m else ""
                if name in LIBC_READS:
                    return False
                if name in LIBC_WRITES:
                    return commas == 0
                consts = protos.get(name)
                if consts is None:
                    return unknown
                return not consts[min(commas, len(consts) - 1)]
            depth -= 1
        elif ch == "," and depth == 0:
            commas += 1
        elif ch in ";{}" and depth == 0:
            stmt = text[i + 1:pos]
            m = re.search(r"([^=]*)=\s*$", stmt)
            if not unknown:  # an array member: read unless it initialises a pointer to change
                return bool(m and "*" in m.group(1) and not const_pointee(m.group(1)))
            return not (m and const_pointee(m.group(1)))
        i -= 1
    return True


def writes(text, fields, arrays, protos):
    """(offset, field) of each write to a client field in text (code already stripped)."""
    found = []
    field_alt = "|".join(sorted(fields, key=len, reverse=True))
    tail = r"(?:\s*\.\s*[A-Za-z_]\w*|\s*\[[^\];]*\])*"
    for start, end in scopes(text):
        scope = text[start:end]
        bases = [r"(?:->|\.)\s*client\s*->"]
        names = client_vars(scope)
        if names:
            bases.append(r"\b(?:" + "|".join(sorted(names)) + r")\s*->")
        base = "(?:" + "|".join(bases) + ")"
        post = re.compile(base + r"\s*(" + field_alt + r")\b" + tail + r"\s*" + ASSIGN_OPS)
        pre = re.compile(r"(?:\+\+|--)\s*(?:[A-Za-z_]\w*\s*)?" + base +
                         r"\s*(" + field_alt + r")\b")
        for rx in (post, pre):
            for m in rx.finditer(scope):
                found.append((start + m.start(), m.group(1)))
        addr_base = r"[A-Za-z_]\w*\s*(?:->|\.)\s*client\s*->"
        if names:
            addr_base = "(?:" + addr_base + r"|\b(?:" + "|".join(sorted(names)) + r")\s*->)"
        addr = re.compile(r"&\s*" + addr_base + r"\s*(" + field_alt + r")\b" + tail +
                          r"(?!\s*(?:->|\.|\[|\())")
        for m in addr.finditer(scope):
            before = scope[:m.start()].rstrip()
            if before.endswith("&") or re.search(r"[\w)\]]$", before) and \
                    not re.search(r"\breturn$", before):
                continue  # a binary & or &&, not an address
            if m.group(1) in EMBEDDED:
                continue
            if address_is_write(text, start + m.start(), protos):
                found.append((start + m.start(), m.group(1)))
        # An array member used bare is its address: written when handed to a writer.
        array = re.compile(r"(?<![&\w])" + addr_base + r"\s*(" + "|".join(sorted(arrays)) +
                           r")\b(?!\s*(?:->|\.|\[|\(|[-+*/%&|^]?=(?!=)|\+\+|--))")
        for m in array.finditer(scope) if arrays else ():
            if address_is_write(text, start + m.start(), protos, unknown=False):
                found.append((start + m.start(), m.group(1)))
    return sorted(set(found))


def source_files(root, everywhere=False):
    for top in ("src", "include"):
        for dirpath, _, files in os.walk(os.path.join(root, top)):
            rel_dir = os.path.relpath(dirpath, root)
            owned = any(rel_dir == d or rel_dir.startswith(d + os.sep) for d in OWNER_DIRS)
            if owned and not everywhere:
                continue
            for f in sorted(files):
                if f.endswith((".c", ".h")):
                    yield os.path.join(rel_dir, f)


def main(argv):
    verbose = "-v" in argv
    args = [a for a in argv if a != "-v"]
    root = args[0] if args else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    fields, arrays = client_fields(root)
    if verbose:
        print(f"struct client fields {len(fields)}: {' '.join(sorted(fields))}")
        print(f"  arrays: {' '.join(sorted(arrays))}")
    allowed = {(f, field): why for f, field, why in ALLOWED}
    protos = {}
    for rel in source_files(root, everywhere=True):
        if rel.endswith(".h"):
            with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as fh:
                prototypes(strip_code(fh.read()), protos)
    bad = ok = 0
    for rel in sorted(source_files(root)):
        with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as fh:
            text = strip_code(fh.read())
        own = dict(protos)
        prototypes(text, own)
        for off, field in writes(text, fields, arrays, own):
            line = text.count("\n", 0, off) + 1
            why = allowed.get((rel.replace(os.sep, "/"), field))
            if why:
                ok += 1
                if verbose:
                    print(f"{rel}:{line}: allowed write of client.{field}: {why}")
            else:
                bad += 1
                print(f"{rel}:{line}: client.{field} written outside the client module")
    print(f"clientwrites: {ok} allowed write(s), " + ("ok" if not bad else f"{bad} violation(s)"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
