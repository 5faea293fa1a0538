"""`/docs`: the OpenAPI document rendered as one self-contained HTML page.

No CDN and no asset files: the CSS and the few lines of JavaScript (a filter box) are inline, so
the page works offline. Everything shown comes from the document itself.
"""

from __future__ import annotations

import re
from html import escape
from typing import Any

import orjson

_METHODS = ("get", "post", "put", "patch", "delete")
_CONSTRAINTS = (
    "format",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "minItems",
    "maxItems",
    "pattern",
    "default",
)

_CSS = """
*{box-sizing:border-box}body{margin:0;font:15px/1.5 system-ui,sans-serif;color:#1f2328;
background:#f6f8fa}nav{position:fixed;top:0;bottom:0;width:290px;overflow:auto;padding:16px;
background:#fff;border-right:1px solid #d0d7de}main{margin-left:290px;padding:24px 40px;
max-width:1100px}nav a{display:block;color:#1f2328;text-decoration:none;padding:2px 0;
font-size:13px}nav h4{margin:14px 0 4px;font-size:12px;text-transform:uppercase;color:#59636e}
input{width:100%;padding:6px 8px;border:1px solid #d0d7de;border-radius:6px}
code{font:13px ui-monospace,monospace;background:#eff1f3;padding:1px 4px;border-radius:4px}
pre{background:#eff1f3;padding:10px;border-radius:6px;overflow:auto;font-size:12px}
section.op,section.schema{background:#fff;border:1px solid #d0d7de;border-radius:8px;
padding:12px 18px;margin:16px 0}.m{display:inline-block;min-width:64px;text-align:center;
color:#fff;border-radius:4px;font:600 12px ui-monospace,monospace;padding:3px 6px;
margin-right:8px}.get{background:#0969da}.post{background:#1a7f37}.put{background:#9a6700}
.delete{background:#cf222e}.patch{background:#8250df}h3{margin:0;font-size:17px}
table{border-collapse:collapse;width:100%;margin:6px 0;font-size:13px}th,td{text-align:left;
vertical-align:top;border-bottom:1px solid #eaeef2;padding:5px 8px}th{color:#59636e;
font-weight:600}.req{color:#cf222e;font-size:11px}.muted{color:#59636e;font-size:12px}
a{color:#0969da}
"""

_JS = """
document.getElementById('q').addEventListener('input',function(e){
  var q=e.target.value.toLowerCase();
  document.querySelectorAll('section.op').forEach(function(s){
    s.style.display=s.textContent.toLowerCase().indexOf(q)<0?'none':'';});});
"""


def _md(text: str) -> str:
    """The little Markdown the descriptions use: paragraphs, `code` and **bold**."""
    out = []
    for para in escape(text).split("\n\n"):
        para = re.sub(r"`([^`]+)`", r"<code>\1</code>", para)
        para = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", para)
        out.append(f"<p>{para}</p>")
    return "".join(out)


def _name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _type(schema: dict[str, Any]) -> str:
    """A short, linked rendering of a JSON schema's type."""
    if "$ref" in schema:
        name = escape(_name(schema["$ref"]))
        return f'<a href="#schema-{name}">{name}</a>'
    for key in ("oneOf", "anyOf"):
        if key in schema:
            return " | ".join(_type(s) for s in schema[key])
    if "const" in schema:
        return f"<code>{escape(orjson.dumps(schema['const']).decode())}</code>"
    if "enum" in schema:
        return " | ".join(f"<code>{escape(str(v))}</code>" for v in schema["enum"])
    kind = schema.get("type", "any")
    if kind == "array":
        return "array of " + _type(schema.get("items", {}))
    return escape(str(kind))


def _constraints(schema: dict[str, Any]) -> str:
    found = {k: schema[k] for k in _CONSTRAINTS if k in schema}
    for sub in schema.get("anyOf", []):
        found |= {k: sub[k] for k in _CONSTRAINTS if k in sub}
    if schema.get("type") == "array" and isinstance(schema.get("items"), dict):
        found |= {f"items.{k}": schema["items"][k] for k in _CONSTRAINTS if k in schema["items"]}
    if not found:
        return ""
    text = ", ".join(
        f"{k}: {v if isinstance(v, str) else orjson.dumps(v).decode()}" for k, v in found.items()
    )
    return f'<div class="muted">{escape(text)}</div>'


def _schema_table(schema: dict[str, Any]) -> str:
    props: dict[str, Any] = schema.get("properties", {})
    if not props:
        return f"<p>Type: {_type(schema)}</p>"
    required = set(schema.get("required", []))
    rows = "".join(
        f"<tr><td><code>{escape(name)}</code>"
        + (' <span class="req">required</span>' if name in required else "")
        + f"</td><td>{_type(prop)}</td><td>{_md(prop.get('description', ''))}"
        + f"{_constraints(prop)}</td></tr>"
        for name, prop in props.items()
    )
    return f"<table><tr><th>Field</th><th>Type</th><th>Description</th></tr>{rows}</table>"


def _resolve(document: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    if "$ref" not in item:
        return item
    node: Any = document
    for part in item["$ref"].removeprefix("#/").split("/"):
        node = node[part]
    return dict(node)


def _content(content: dict[str, Any]) -> str:
    return ", ".join(
        f"{_type(media.get('schema', {}))} <span class=muted>({escape(kind)})</span>"
        for kind, media in content.items()
    )


def _operation(document: dict[str, Any], path: str, method: str, op: dict[str, Any]) -> str:
    anchor = escape(op.get("operationId", f"{method}-{path}"))
    parts = [
        f'<section class="op" id="op-{anchor}"><h3><span class="m {method}">{method.upper()}'
        f"</span><code>{escape(path)}</code></h3><p><strong>{escape(op.get('summary', ''))}"
        f"</strong></p>{_md(op.get('description', ''))}"
    ]
    if op.get("security") == []:
        parts.append('<p class="muted">No API key needed.</p>')
    params = [_resolve(document, p) for p in op.get("parameters", [])]
    if params:
        rows = "".join(
            f"<tr><td><code>{escape(p['name'])}</code>"
            + (' <span class="req">required</span>' if p.get("required") else "")
            + f"</td><td>{escape(p['in'])}</td><td>{_type(p.get('schema', {}))}"
            + f"{_constraints(p.get('schema', {}))}</td>"
            + f"<td>{_md(p.get('description', ''))}</td></tr>"
            for p in params
        )
        parts.append(
            "<h4>Parameters</h4><table><tr><th>Name</th><th>In</th><th>Type</th>"
            f"<th>Description</th></tr>{rows}</table>"
        )
    if "requestBody" in op:
        content = op["requestBody"]["content"]
        parts.append(f"<h4>Request body</h4><p>{_content(content)}</p>")
        for media in content.values():
            for name, example in media.get("examples", {}).items():
                pretty = orjson.dumps(example["value"], option=orjson.OPT_INDENT_2).decode()
                parts.append(
                    f"<details><summary>Example: {escape(name)}</summary>"
                    f"<pre>{escape(pretty)}</pre></details>"
                )
    rows = ""
    for status, response in op.get("responses", {}).items():
        resolved = _resolve(document, response)
        rows += (
            f"<tr><td><strong>{escape(status)}</strong></td>"
            f"<td>{_md(resolved.get('description', ''))}</td>"
            f"<td>{_content(resolved.get('content', {}))}</td></tr>"
        )
    parts.append(
        "<h4>Responses</h4><table><tr><th>Status</th><th>Description</th><th>Body</th></tr>"
        f"{rows}</table></section>"
    )
    return "".join(parts)


def _errors(document: dict[str, Any]) -> str:
    items = []
    for response in document["components"].get("responses", {}).values():
        example = response.get("content", {}).get("application/json", {}).get("example")
        pretty = orjson.dumps(example, option=orjson.OPT_INDENT_2).decode() if example else ""
        status = example["errors"][0]["status"] if example else ""
        items.append(
            f"<tr><td><strong>{status}</strong></td><td>{_md(response['description'])}</td>"
            f"<td><pre>{escape(pretty)}</pre></td></tr>"
        )
    return (
        '<section class="schema" id="errors"><h2>Errors</h2><p>Every error answers '
        '<a href="#schema-ErrorsOut">ErrorsOut</a>: <code>{"errors": [{"status", "title", '
        '"detail", "source"?}]}</code>, one object per problem.</p><table><tr><th>Status</th>'
        f"<th>When</th><th>Example</th></tr>{''.join(items)}</table></section>"
    )


def render_docs(document: dict[str, Any]) -> str:
    """The whole page for `document` (an OpenAPI 3.1 dict)."""
    info = document["info"]
    by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, item in document["paths"].items():
        for method in _METHODS:
            if method in item:
                tag = (item[method].get("tags") or ["Other"])[0]
                by_tag.setdefault(tag, []).append((path, method, item[method]))
    nav, body = [], []
    for tag, ops in by_tag.items():
        nav.append(f"<h4>{escape(tag)}</h4>")
        body.append(f"<h2>{escape(tag)}</h2>")
        for path, method, op in ops:
            anchor = escape(op.get("operationId", f"{method}-{path}"))
            nav.append(f'<a href="#op-{anchor}">{method.upper()} {escape(path)}</a>')
            body.append(_operation(document, path, method, op))
    schemas = document["components"]["schemas"]
    nav.append('<h4>Reference</h4><a href="#errors">Errors</a>')
    body.append(_errors(document))
    body.append("<h2>Schemas</h2>")
    for name, schema in schemas.items():
        nav.append(f'<a href="#schema-{escape(name)}">{escape(name)}</a>')
        body.append(
            f'<section class="schema" id="schema-{escape(name)}"><h3>{escape(name)}</h3>'
            f"{_md(schema.get('description', ''))}{_schema_table(schema)}</section>"
        )
    servers = ", ".join(f"<code>{escape(s['url'])}</code>" for s in document.get("servers", []))
    title = escape(info["title"])
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<style>{_CSS}</style></head><body><nav><strong>{title}</strong> "
        f'<span class="muted">{escape(info["version"])}</span><p><input id="q" '
        'placeholder="Filter operations" aria-label="Filter operations"></p>'
        f'{"".join(nav)}</nav><main><h1>{title} <span class="muted">{escape(info["version"])}'
        f'</span></h1><p>Server: {servers} · <a href="openapi.json">openapi.json</a> '
        f"(OpenAPI {escape(document['openapi'])})</p>{_md(info.get('description', ''))}"
        f"{''.join(body)}</main><script>{_JS}</script></body></html>"
    )
