"""Every page of the console the accessibility and layout checks visit, in one list.

A page added to the console (`webui.pages.NAV`) goes here too, with a selector
that shows once its data has come from the API (the checks look at the page as
a person sees it, not at the empty shell) and the buttons that open its
dialogs; `test_every_console_page_is_checked` fails until it is. `PUBLIC` are
the pages seen before logging in.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ConsolePage:
    path: str
    #: present once the page shows its data
    ready: str
    #: buttons (Playwright selectors) that open a dialog on the page: each dialog is checked too
    opens: tuple[str, ...] = ()
    #: only an administrator sees the page (the other roles' checks leave it out)
    admin_only: bool = False


PAGES: list[ConsolePage] = [
    ConsolePage("/overview", "#machine-list .machine"),
    ConsolePage("/oee", "#oee-machines > *"),
    ConsolePage("/devices", "#device-list .device", opens=("#device-cnc01 button:text-is('Edit')",
                                                           "#device-cnc01 button.trend-open >> nth=0")),
    ConsolePage("/mappings", "#machines-table tbody tr"),
    ConsolePage("/connections", "#connection-list .connection"),
    ConsolePage("/queue", "#queue-table tbody tr"),
    ConsolePage("/labels", "#held-labels tbody tr"),
    ConsolePage("/history", "#history-table tbody tr"),
    ConsolePage("/logs", "#log-lines .log-line"),
    ConsolePage("/users", "#users-table tbody tr"),
    ConsolePage("/identity", "#public-key"),
    ConsolePage("/system", "#about dt"),
    ConsolePage("/api-reference", "#get-api-v1-production"),
    ConsolePage("/fleet", "#fleet-counts:not(:empty)", admin_only=True),
]

#: pages before logging in (the setup page only while the gateway has no administrator)
PUBLIC: list[ConsolePage] = [
    ConsolePage("/setup", "#create-admin"),
    ConsolePage("/login", "#login"),
    ConsolePage("/no-such-page", "main h2"),
]

#: the sizes every page must work at: a phone, a 10-inch panel PC, a desktop
VIEWPORTS: dict[str, dict[str, int]] = {
    "phone": {"width": 390, "height": 844},
    "panel": {"width": 1024, "height": 600},
    "desktop": {"width": 1920, "height": 1080},
}
