"""Hand-written SQL of the labeling app that lives in the database (functions), one file each.

Migrations load these files (`read`); the files ship with the package.
"""

from __future__ import annotations

import re
from importlib.resources import files


def read(name: str) -> str:
    """The text of one of this package's .sql files."""
    return files(__name__).joinpath(name).read_text(encoding="utf-8")


def function_body(sql: str) -> str:
    """The body of the one `CREATE FUNCTION ... AS $fn$ <body> $fn$` in a file's text: what
    PostgreSQL stores as the function's source (pg_proc.prosrc)."""
    found = re.search(r"\$fn\$(.*)\$fn\$", sql, flags=re.DOTALL)
    if found is None:
        raise ValueError("no $fn$-quoted function body")
    return found.group(1)
