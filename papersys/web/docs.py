"""``/docs``: the OpenAPI description rendered as one plain HTML page on the server (FastAPI's own page
loads Swagger UI from a CDN, and the API must work offline). ``/openapi.json`` has the same, as JSON."""

from __future__ import annotations

from html import escape
from typing import Any

STYLE = (
    "body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:1rem auto;padding:0 1rem}"
    "code{background:#eee;padding:0 .2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
    "padding:.2em .5em;text-align:left;vertical-align:top}"
)


def docs_page(spec: dict[str, Any]) -> str:
    info = spec.get("info", {})
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        '<meta name=viewport content="width=device-width,initial-scale=1">',
        f"<title>{escape(info.get('title', 'API'))} API</title><style>{STYLE}</style></head><body>",
        f"<h1>{escape(info.get('title', 'API'))} {escape(str(info.get('version', '')))}</h1>",
        f"<p>{escape(info.get('summary', ''))} Machine-readable: <a href=/openapi.json>/openapi.json</a>.</p>",
    ]
    for path, methods in spec.get("paths", {}).items():
        for method, operation in methods.items():
            parts.append(f"<h2><code>{escape(method.upper())} {escape(path)}</code></h2>")
            parts.append(f"<p>{escape(operation.get('summary', ''))}</p>")
            parts.append(_parameters(operation.get("parameters", [])))
            parts.append(_returns(spec, operation.get("responses", {})))
    parts.append("</body></html>")
    return "\n".join(parts)


def _parameters(parameters: list[dict[str, Any]]) -> str:
    if not parameters:
        return ""
    rows = ["<table><tr><th>parameter</th><th>in</th><th>type</th><th>description</th></tr>"]
    for p in parameters:
        rows.append(
            f"<tr><td><code>{escape(p['name'])}</code>{' (required)' if p.get('required') else ''}</td>"
            f"<td>{escape(p.get('in', ''))}</td><td>{escape(_type(p.get('schema', {})))}</td>"
            f"<td>{escape(p.get('description', ''))}</td></tr>"
        )
    return "".join(rows) + "</table>"


def _returns(spec: dict[str, Any], responses: dict[str, Any]) -> str:
    """One line per status: the JSON object's fields (from the component schema it names)."""
    lines = []
    for status, response in sorted(responses.items()):
        ref = response.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref", "")
        name = ref.rsplit("/", 1)[-1]
        fields = spec.get("components", {}).get("schemas", {}).get(name, {}).get("properties", {})
        shown = f"<code>{escape(name)}</code> {{{escape(', '.join(fields))}}}" if fields else "JSON"
        lines.append(f"<li>{escape(str(status))}: {shown}</li>")
    return f"<ul>{''.join(lines)}</ul>" if lines else ""


def _type(schema: dict[str, Any]) -> str:
    if "anyOf" in schema:
        return " | ".join(_type(s) for s in schema["anyOf"])
    if "enum" in schema:
        return " | ".join(str(v) for v in schema["enum"])
    if schema.get("type") == "array":
        return f"list of {_type(schema.get('items', {}))}"
    kind = str(schema.get("type", "any"))
    limits = [f"{k} {schema[k]}" for k in ("minimum", "maximum", "maxLength", "format") if k in schema]
    return kind + (f" ({', '.join(limits)})" if limits else "")
