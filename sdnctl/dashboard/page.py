"""The dashboard page: one self-contained HTML document (no CDN, no build step).

`static/page.html` is the skeleton; `static/style.css` and `static/app.js` are
inlined into it, and the Content-Security-Policy allows exactly those two inline
blocks (by hash) and fetches to the daemon itself: nothing else runs or loads.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from dataclasses import dataclass
from importlib import resources

HTML = "text/html; charset=utf-8"


@dataclass(frozen=True, slots=True)
class Page:
    body: bytes
    headers: tuple[tuple[str, str], ...]


def _static(name: str) -> str:
    return resources.files("sdnctl.dashboard").joinpath("static", name).read_text("utf-8")


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


@functools.cache
def page() -> Page:
    style, script = _static("style.css"), _static("app.js")
    html = (_static("page.html")
            .replace("<!--STYLE-->", f"<style>{style}</style>")
            .replace("<!--SCRIPT-->", f"<script>{script}</script>"))
    csp = (f"default-src 'none'; script-src {_sha256(script)}; style-src {_sha256(style)}; "
           "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
           "frame-ancestors 'none'")
    return Page(html.encode(), (
        ("Content-Security-Policy", csp),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
    ))
