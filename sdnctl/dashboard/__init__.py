"""The web dashboard the daemon serves beside its status API (sdnctl.api).

    /  and  /dashboard     the page (sdnctl.dashboard.page): topology, VMs, the live
                           reachability matrix with explain-on-click, the last edits
    /network /matrix /explain /edits /connections
                           the JSON documents it reads (sdnctl.dashboard.data);
                           /connections is the connection log's last records

Same listener, same rules as the rest of the API: GET/HEAD only, and with a token
configured every JSON route needs `Authorization: Bearer TOKEN`. The page itself
is fixed bytes with no state in it, so it is served without the token; its script
takes the token from the URL fragment (`#token=...`, which browsers never send to
a server, so it reaches no log) or from a form, keeps it in sessionStorage and
sends it as that header. No os-ken here: only the pure core is imported.
"""

from __future__ import annotations

from .data import BadQuery, Dashboard
from .page import HTML, Page, page

__all__ = ["HTML", "BadQuery", "Dashboard", "Page", "page"]
