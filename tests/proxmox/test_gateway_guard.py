"""The gateway rule, checked on the source: outside apps/proxmox no code names a Proxmox API path
or calls the client's raw get/post/put/delete. Everything Proxmox goes through apps.proxmox's
typed modules (cluster, nodes, guests, storage, hardware, ...)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

APPS = Path(__file__).resolve().parents[2] / "apps"

# Strings shaped like a Proxmox API path: a rooted or relative area prefix, or a guest type segment.
_AREA = r"(?:nodes|cluster|storage|access|pools|version)"
_PROXMOX_PATH = re.compile(rf"^/{_AREA}(?:/|$)|^{_AREA}/\w|/(?:qemu|lxc)(?:/|$)|/status/(?:start|stop|current|shutdown)\b")
_RAW_METHODS = {"get", "post", "put", "delete", "request"}
_CLIENT_NAMES = re.compile(r"(?:^|_)(?:client|proxmox|pve|api)$")


def _looks_like_path(text: str) -> bool:
    text = text.strip()
    if not text or any(c in text for c in " <>\n") or text.endswith((".html", ".py", ".txt")):
        return False
    return bool(_PROXMOX_PATH.search(text))


def _fstring_literal(node: ast.JoinedStr) -> str:
    # The constant parts joined with a placeholder so `f"nodes/{n}/qemu"` reads as "nodes/x/qemu".
    return "x".join(v.value if isinstance(v, ast.Constant) else "" for v in node.values)


def _receiver_name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def gateway_violations(root: Path = APPS) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if rel.parts[0] == "proxmox" or "migrations" in rel.parts:
            continue
        tree = ast.parse(path.read_text(), str(path))
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                      and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            where = f"apps/{rel}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                if _looks_like_path(node.value):
                    found.append(f"{where} path {node.value!r}")
            elif isinstance(node, ast.JoinedStr) and _looks_like_path(_fstring_literal(node)):
                found.append(f"{where} path f-string {_fstring_literal(node)!r}")
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr in _RAW_METHODS and _CLIENT_NAMES.search(_receiver_name(node.func.value)) \
                    and node.args and isinstance(node.args[0], (ast.Constant, ast.JoinedStr, ast.BinOp)):
                found.append(f"{where} raw {_receiver_name(node.func.value)}.{node.func.attr}(...)")
    return sorted(set(found))


def test_no_proxmox_path_or_raw_call_outside_the_gateway():
    violations = gateway_violations()
    assert violations == [], "\n".join(violations)


def test_the_guard_finds_what_it_guards_against(tmp_path):
    (tmp_path / "guests").mkdir()
    (tmp_path / "guests" / "bad.py").write_text(
        'def f(client, guest):\n'
        '    client.get(f"nodes/{guest.node}/qemu/{guest.vmid}/config")\n'
        '    client.post("cluster/backup", id="x")\n'
        '    self_client = client\n'
        '    return "/storage/local", "/pools", "template.html", "just words"\n')
    (tmp_path / "proxmox").mkdir()
    (tmp_path / "proxmox" / "fine.py").write_text('def g(client):\n    return client.get("cluster/resources")\n')
    found = gateway_violations(tmp_path)
    assert any("raw client.get" in v for v in found)
    assert any("raw client.post" in v for v in found)
    assert any("'/storage/local'" in v for v in found) and any("'/pools'" in v for v in found)
    assert any("f-string" in v and "qemu" in v for v in found)
    assert not any("fine.py" in v or "template.html" in v or "just words" in v for v in found)
