"""--storage: two workers on one study in a real PostgreSQL server (Debian's `postgresql`, started here in a temp
folder), and the errors of a bad URL, a missing driver and an unreachable server."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import optuna
import pytest

from helpers import free_ports, require, run_cli, run_inline, write_spec
from helpers import NAME, popen_sweep, sweep_spec


@pytest.fixture(scope="module")
def postgres():
    """A throw-away PostgreSQL server on a free local port: its SQLAlchemy URL (psycopg2, the pinned driver)."""
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    require("postgresql", bool(bins), "sweeps' --storage is tested against a real server (Debian package "
                                      "postgresql; .ci/run installs it)")
    bindir = Path(bins[-1]).parent
    folder = Path(tempfile.mkdtemp(prefix="dlrun-pg-"))
    # the server refuses to run as root: there, it runs as the package's postgres user
    as_user = []
    if os.getuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(folder, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, (port,) = folder / "data", free_ports(1)
    run = lambda *argv: subprocess.run([*as_user, *map(str, argv)], check=True, capture_output=True,  # noqa: E731
                                       text=True, timeout=120)
    run(bindir / "initdb", "-D", data, "-A", "trust", "-U", "dlrun", "--no-sync")
    run(bindir / "pg_ctl", "-D", data, "-l", folder / "server.log", "-w", "-t", "60", "start", "-o",
        f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off")
    try:
        yield f"postgresql+psycopg2://dlrun@127.0.0.1:{port}/postgres"
    finally:
        run(bindir / "pg_ctl", "-D", data, "-m", "immediate", "stop")
        shutil.rmtree(folder)


@pytest.mark.slow
def test_two_workers_share_one_postgresql_study(tmp_path, postgres):
    path = write_spec(tmp_path, sweep_spec(tmp_path, trials=3, heartbeat_interval=2, grace_period=60))
    workers = [popen_sweep(path, "--storage", postgres), popen_sweep(path, "--storage", postgres)]
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    study = optuna.load_study(study_name=NAME, storage=postgres)
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(complete) == 3 and len({t.user_attrs["run_dir"] for t in complete}) == 3
    surplus = [t for t in study.trials if t.state.name == "FAIL"]
    assert all(t.user_attrs.get("surplus") for t in surplus)  # lost the race for the last place, never trained
    assert sum("trial " in line and "->" in line for out in outputs for line in out.splitlines()) == 3
    assert not (tmp_path / "runs" / NAME / "sweep.db").exists()  # the study lives in the server only
    status = run_cli("sweep", path, "--status", "--storage", postgres, check_code=0).stdout.splitlines()
    assert status[:2] == [f"sweep {NAME}: random, maximize val_accuracy; storage {postgres}",
                          "finished 3/3 (3 complete, 0 pruned), 0 running, 0 queued, 0 failed"
                          + (f", {len(surplus)} surplus (not run)" if surplus else "")]


@pytest.mark.slow
def test_a_worker_that_loses_the_race_to_create_the_schema_retries(tmp_path, postgres):
    # the race of two workers on a new database, made certain. Optuna checks for every table, then creates its enum
    # types and tables: this transaction holds its first type, so the worker's CREATE TYPE waits; meanwhile one of
    # the tables it found missing appears, so once the type is released its CREATE TABLE fails as duplicate_table
    import sqlalchemy
    from optuna.storages._rdb import models

    with sqlalchemy.create_engine(postgres, isolation_level="AUTOCOMMIT").connect() as connection:
        connection.execute(sqlalchemy.text("CREATE DATABASE race"))
    url = postgres.rsplit("/", 1)[0] + "/race"
    engine = sqlalchemy.create_engine(url)
    waiting = sqlalchemy.text("SELECT count(*) FROM pg_stat_activity WHERE datname = 'race' "
                              "AND wait_event_type = 'Lock' AND query LIKE 'CREATE TYPE studydirection%'")
    with engine.connect() as first, engine.connect().execution_options(isolation_level="AUTOCOMMIT") as other:
        held = first.begin()
        first.execute(sqlalchemy.text("CREATE TYPE studydirection AS ENUM ('NOT_SET', 'MINIMIZE', 'MAXIMIZE')"))
        worker = popen_sweep(write_spec(tmp_path, sweep_spec(tmp_path, trials=1)), "--storage", url)
        # autocommit: within one transaction PostgreSQL serves the same snapshot of pg_stat_activity
        for _ in range(600):
            if other.execute(waiting).scalar() or worker.poll() is not None:
                break
            time.sleep(0.1)
        assert other.execute(waiting).scalar() == 1, worker.communicate(timeout=60)[0]
        other.execute(sqlalchemy.schema.CreateTable(models.VersionInfoModel.__table__))
        held.rollback()
    out = worker.communicate(timeout=600)[0]
    engine.dispose()
    assert worker.returncode == 0, out
    assert [t.state.name for t in optuna.load_study(study_name=NAME, storage=url).trials] == ["COMPLETE"]


def test_a_storage_that_is_not_a_url_is_a_config_error(tmp_path):
    from runner.kernel.errors import ConfigError
    from runner.sweep.study import run_sweep

    with pytest.raises(ConfigError) as caught:
        run_sweep(write_spec(tmp_path, sweep_spec(tmp_path)), storage="nonsense")
    assert caught.value.message == ("--storage: 'nonsense' is not a SQLAlchemy URL (Could not parse SQLAlchemy URL "
                                    "from given URL string); e.g. postgresql+psycopg2://user@host/db or "
                                    "sqlite:///path/sweep.db")


def test_a_missing_database_driver_is_named(tmp_path):
    from runner.kernel.errors import EnvironmentProblem
    from runner.sweep.study import run_sweep

    with pytest.raises(EnvironmentProblem) as caught:
        run_sweep(write_spec(tmp_path, sweep_spec(tmp_path)), storage="mysql+mysqldb://dlrun@127.0.0.1/db")
    assert caught.value.exit_code == 5
    assert caught.value.message == (
        "--storage: the database driver for 'mysql+mysqldb' is not installed (No module named 'MySQLdb'); install "
        "it, or name an installed driver in the URL, e.g. postgresql+psycopg2://user@host/db with "
        "pip install psycopg2-binary")


def test_an_unreachable_server_exits_5_naming_it(tmp_path):
    (port,) = free_ports(1)  # nothing listens there
    url = f"postgresql+psycopg2://dlrun@127.0.0.1:{port}/postgres"
    proc = run_inline("sweep", write_spec(tmp_path, sweep_spec(tmp_path)), "--storage", url, check_code=5)
    assert f"cannot open the sweep storage {url}: connection to server at \"127.0.0.1\", port {port} failed: " \
           "Connection refused" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "runs").exists()
