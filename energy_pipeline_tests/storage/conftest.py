"""Fixtures for the time-series stores: every reachable backend, and QuestDB's own SQL grammar.

``ts_store`` runs each conformance test against SQLite always and against QuestDB when a live server
is configured (``QUESTDB_ADDR`` and ``QUESTDB_PG_DSN``); each QuestDB test gets its own prefixed
tables, dropped afterwards, so a shared server's real data is never touched.

``questdb_sql_parser`` installs ``@questdb/sql-parser`` (QuestDB's published grammar) with npm into a
cache directory on first use and returns a function that parses SQL strings with it.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from energy_pipeline.storage.sqlite_timeseries import SQLiteTimeSeriesStore
from energy_pipeline.storage.timeseries import TimeSeriesStore

QUESTDB_ENV = ("QUESTDB_ADDR", "QUESTDB_PG_DSN")
SQL_PARSER_PACKAGE = "@questdb/sql-parser"
SQL_PARSER_VERSION = "0.1.0"
NPM_INSTALL_TIMEOUT_S = 300

_PARSE_SCRIPT = r"""
const { parseToAst } = require("@questdb/sql-parser");
let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => { input += chunk; });
process.stdin.on("end", () => {
  const results = JSON.parse(input).map((sql) => {
    try {
      const parsed = parseToAst(sql);
      return { errors: parsed.errors.map((e) => e.message), statements: parsed.ast.length,
               type: parsed.ast.length ? parsed.ast[0].type : null };
    } catch (error) {
      return { errors: [String(error)], statements: 0, type: null };
    }
  });
  process.stdout.write(JSON.stringify(results));
});
"""


def questdb_configured() -> bool:
    return all(os.environ.get(name) for name in QUESTDB_ENV)


def _drop_questdb_tables(dsn: str, tables: tuple[str, ...]) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
        for table in tables:
            conn.execute(f"DROP TABLE IF EXISTS {table}")


@pytest.fixture(params=["sqlite", "questdb"])
def ts_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TimeSeriesStore]:
    """A fresh, empty time-series store of each reachable backend."""
    if request.param == "sqlite":
        store = SQLiteTimeSeriesStore(tmp_path / "timeseries.sqlite3")
        try:
            yield store
        finally:
            store.close()
        return
    if not questdb_configured():
        pytest.skip("QuestDB half of the conformance suite: set QUESTDB_ADDR (e.g. http::addr=localhost:9000;) "
                    "and QUESTDB_PG_DSN (e.g. postgresql://admin:quest@localhost:8812/qdb) to a live server")
    from energy_pipeline.storage.questdb import QuestDBTimeSeriesStore

    store = QuestDBTimeSeriesStore(os.environ["QUESTDB_ADDR"], os.environ["QUESTDB_PG_DSN"],
                                   table_prefix=f"test_{uuid.uuid4().hex[:12]}_")
    try:
        yield store
    finally:
        store.close()
        tables = (store.tables.statistics, store.tables.readings, store.tables.daily_summary)
        _drop_questdb_tables(os.environ["QUESTDB_PG_DSN"], tables)


def sql_parser_dir() -> Path:
    configured = os.environ.get("QUESTDB_SQL_PARSER_DIR")
    if configured:
        return Path(configured)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "energy_pipeline" / f"questdb-sql-parser-{SQL_PARSER_VERSION}"


def _install_sql_parser(target: Path) -> None:
    """npm-install the parser once; a lock file keeps parallel test runs from installing at once."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is not installed: the QuestDB SQL grammar check needs Node.js and npm "
                    "(apt-get install nodejs npm)", pytrace=False)
    target.mkdir(parents=True, exist_ok=True)
    marker = target / "node_modules" / "@questdb" / "sql-parser" / "package.json"
    with open(target / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists() and json.loads(marker.read_text()).get("version") == SQL_PARSER_VERSION:
            return
        try:
            result = subprocess.run(
                [npm, "install", "--prefix", str(target), "--no-audit", "--no-fund", "--no-save",
                 "--loglevel=error", f"{SQL_PARSER_PACKAGE}@{SQL_PARSER_VERSION}"],
                capture_output=True, text=True, timeout=NPM_INSTALL_TIMEOUT_S, stdin=subprocess.DEVNULL,
                check=False)
        except subprocess.TimeoutExpired:
            pytest.fail(f"npm install {SQL_PARSER_PACKAGE} did not finish in {NPM_INSTALL_TIMEOUT_S}s",
                        pytrace=False)
        if result.returncode != 0 or not marker.exists():
            pytest.fail(f"npm install {SQL_PARSER_PACKAGE}@{SQL_PARSER_VERSION} into {target} failed "
                        f"({result.returncode}):\n{result.stderr[-3000:]}", pytrace=False)


@pytest.fixture(scope="session")
def questdb_sql_parser() -> Callable[[list[str]], list[dict]]:
    """``parse(statements) -> [{"errors": [...], "statements": n, "type": ...}, ...]`` by QuestDB's grammar."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: the QuestDB SQL grammar check needs Node.js 18+", pytrace=False)
    target = sql_parser_dir()
    _install_sql_parser(target)
    script = target / "parse-statements.cjs"
    if not script.exists() or script.read_text() != _PARSE_SCRIPT:
        tmp = script.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(_PARSE_SCRIPT)
        tmp.replace(script)

    def parse(statements: list[str]) -> list[dict]:
        result = subprocess.run([node, str(script)], input=json.dumps(statements), capture_output=True,
                                text=True, timeout=120, check=False, cwd=target)
        if result.returncode != 0:
            pytest.fail(f"the SQL parser script failed ({result.returncode}):\n{result.stderr[-3000:]}",
                        pytrace=False)
        parsed = json.loads(result.stdout)
        assert len(parsed) == len(statements)
        return parsed

    return parse
