"""`chatsvc serve --demo`: staff to try the three pages with, and the links to sign them in.

Demo staff are tokens, as every user of chatsvc is: two doctors who serve every department and a
supervisor who oversees them all, signed with the desk's secret. Their sign-in links carry the
token in the URL fragment (`#token=`), which browsers never send, so it reaches no server log.
Without --demo nothing is issued or printed.
"""

from __future__ import annotations

from dataclasses import dataclass

from chatsvc import tokens
from chatsvc.config import Config

# Long enough for a day of trying things; a demo desk is not a real one.
DEMO_TOKEN_TTL_S = 12 * 3600
DEMO_CAPACITY = 3


@dataclass(frozen=True)
class DemoUser:
    role: tokens.Role
    user_id: str
    name: str


DEMO_USERS = (
    DemoUser(tokens.Role.DOCTOR, "demo-doctor-1", "Dr Wang (demo)"),
    DemoUser(tokens.Role.DOCTOR, "demo-doctor-2", "Dr Chen (demo)"),
    DemoUser(tokens.Role.SUPERVISOR, "demo-supervisor", "Head nurse Li (demo)"),
)


@dataclass(frozen=True)
class DemoLink:
    label: str
    url: str


def demo_links(base_url: str, secret: str, config: Config, now: float) -> list[DemoLink]:
    """The patient page, then a sign-in link per demo user, on `base_url` (http://host:port)."""
    departments = tuple(department.id for department in config.departments)
    links = [DemoLink("Patient widget on a sample hospital page", f"{base_url}/demo")]
    for user in DEMO_USERS:
        token = tokens.issue(
            secret,
            user.role,
            user.user_id,
            now,
            DEMO_TOKEN_TTL_S,
            name=user.name,
            departments=departments,
            capacity=DEMO_CAPACITY if user.role is tokens.Role.DOCTOR else 0,
        )
        page = "doctor" if user.role is tokens.Role.DOCTOR else "supervisor"
        kind = "Doctor console" if page == "doctor" else "Supervisor dashboard"
        links.append(DemoLink(f"{kind}, {user.name}", f"{base_url}/{page}#token={token}"))
    return links


def format_links(links: list[DemoLink]) -> str:
    width = max(len(link.label) for link in links)
    heading = "chatsvc demo desk: open these in your browser (each person in their own tab)"
    lines = ["", heading, ""]
    lines += [f"  {link.label.ljust(width)}  {link.url}" for link in links]
    return "\n".join([*lines, ""])
