"""Who is annotating, and who may review: the `--auth` and `--reviewers` files.

`--auth FILE` holds `name:password` lines; a name written `+name` is also a reviewer. With a
login, the login is the annotator's name; without one, people type their name. Names are
normalised as the store stores them (trimmed, case-folded), so "Vis" and "vis" are one person.
Review: with `--auth`, only reviewers (marked `+` or listed in `--reviewers FILE`) may settle
conflicts; without `--auth`, Review is open to any typed name, or only to the names in
`--reviewers` when that file is given (typed names prove nothing: use `--auth` for that).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from da2k.store.annotate import Da2kError, normalize_name


def _lines(path: str | Path, what: str) -> list[tuple[int, str]]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise Da2kError(f"cannot read the {what} file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    return [
        (number, line)
        for number, line in enumerate(text.splitlines(), 1)
        if line.strip() and not line.lstrip().startswith("#")
    ]


def read_auth_file(path: str | Path) -> dict[str, str]:
    """`name:password` per line (blank lines and `#` comments ignored); names normalised,
    a leading `+` (reviewer mark) dropped: see `read_auth_reviewers`."""
    users: dict[str, str] = {}
    for number, line in _lines(path, "auth"):
        name, sep, password = line.partition(":")
        name = name.strip().removeprefix("+")
        if not sep or not name.strip() or not password:
            raise Da2kError(f"{path}:{number}: expected 'name:password' (or '+name:password' for a reviewer)")
        users[normalize_name(name)] = password
    if not users:
        raise Da2kError(f"the auth file {path} names no users ('name:password' per line)")
    return users


def read_auth_reviewers(path: str | Path) -> set[str]:
    """The names marked `+name:password` in an auth file."""
    marked = set()
    for _, line in _lines(path, "auth"):
        name = line.partition(":")[0].strip()
        if name.startswith("+"):
            marked.add(normalize_name(name[1:]))
    return marked


def read_reviewers_file(path: str | Path) -> set[str]:
    """One reviewer name per line (blank lines and `#` comments ignored)."""
    names = {normalize_name(line) for _, line in _lines(path, "reviewers")}
    if not names:
        raise Da2kError(f"the reviewers file {path} names nobody (one name per line)")
    return names


@dataclass
class Access:
    """Logins (None: people type their name) and reviewers (None: anyone may review)."""

    users: Optional[dict[str, str]] = None
    reviewers: Optional[set[str]] = None

    @classmethod
    def from_options(
        cls, auth: str | Path | dict[str, str] | None, reviewers: str | Path | set[str] | None
    ) -> "Access":
        users: Optional[dict[str, str]] = None
        marked: set[str] = set()
        if isinstance(auth, (str, Path)):
            users, marked = read_auth_file(auth), read_auth_reviewers(auth)
        elif auth:
            users = {normalize_name(k.removeprefix("+")): v for k, v in auth.items()}
            marked = {normalize_name(k[1:]) for k in auth if k.startswith("+")}
        named = read_reviewers_file(reviewers) if isinstance(reviewers, (str, Path)) else set(reviewers or ())
        chosen = {normalize_name(n) for n in named} | marked
        if users is not None:
            return cls(users, chosen)  # with logins, only the chosen review (maybe nobody)
        return cls(None, chosen or None)

    @property
    def logins(self) -> bool:
        return self.users is not None

    def check_login(self, user: str, password: str) -> bool:
        """Gradio's login check: the name as typed at the login box, normalised."""
        if self.users is None:
            return True
        try:
            name = normalize_name(user)
        except Da2kError:
            return False
        known = self.users.get(name)
        return known is not None and hmac.compare_digest(known.encode(), password.encode())

    def may_review(self, name: str) -> Optional[str]:
        """None if `name` may settle conflicts, else why not (one line for the page)."""
        if self.reviewers is None:
            return None
        if not self.reviewers:
            return "Nobody may review yet: start the app with --reviewers FILE, or mark reviewers '+name' in --auth."
        if normalize_name(name) not in self.reviewers:
            return (
                f"{normalize_name(name)} is not a reviewer (reviewers are named by --reviewers or '+name' in --auth)."
            )
        return None
