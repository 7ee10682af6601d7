"""The package as a user gets it: sdist and wheel built, installed outside the checkout, serving.

The sdist is made from the checkout (``python -m build --sdist``, which
writes only the ignored ``notifier.egg-info`` there) and the wheel with
``pip wheel .`` inside the unpacked sdist, so the wheel proves the sdist
complete too. The fresh venv gets the wheel alone; its dependencies come
from this test's own environment through a ``.pth`` line, so nothing is
downloaded for it and nothing of the checkout is on its path.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tarfile
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from notifier import content
from tests.conftest import event
from tests.processes import http_ready, wait_until
from tests.smtpd import free_port

pytestmark = pytest.mark.slow

CONTENT = ("templates", "locales")


def shipped_files() -> set[str]:
    """The checkout's default mail, as paths from the project root (compiled catalogs aside)."""
    return {
        path.relative_to(content.PROJECT_DIR).as_posix()
        for name in CONTENT
        for path in (content.PROJECT_DIR / name).rglob("*")
        if path.is_file() and path.suffix != ".mo" and "__pycache__" not in path.parts
    }


def call(args: list[str | Path], cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [str(arg) for arg in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"{args}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@dataclass(frozen=True)
class Built:
    sdist: Path
    wheel: Path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    out = tmp_path_factory.mktemp("dist")
    call([sys.executable, "-m", "build", "--sdist", "--outdir", out], content.PROJECT_DIR)
    [sdist] = out.glob("notifier-*.tar.gz")
    unpacked = tmp_path_factory.mktemp("sdist")
    with tarfile.open(sdist) as archive:
        archive.extractall(unpacked, filter="data")
    [source] = unpacked.iterdir()
    call([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "-w", out], source)
    [wheel] = out.glob("notifier-*.whl")
    return Built(sdist, wheel)


def test_the_sdist_carries_the_templates_and_the_catalogs(built: Built) -> None:
    with tarfile.open(built.sdist) as archive:
        root = archive.getnames()[0].split("/")[0]
        names = {name.removeprefix(root + "/") for name in archive.getnames()}
    assert shipped_files() <= names
    assert "setup.py" in names and "babel.cfg" in names


LICENCE_OPENINGS = {"MIT": "MIT License\n"}
"""How each SPDX id we could declare opens its licence text."""


def declared_licence() -> str:
    """pyproject's ``license``: the SPDX expression a package index shows."""
    with (content.PROJECT_DIR / "pyproject.toml").open("rb") as file:
        licence = tomllib.load(file)["project"]["license"]
    assert isinstance(licence, str), licence
    return licence


def test_the_licence_file_is_the_licence_pyproject_declares() -> None:
    text = (content.PROJECT_DIR / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith(LICENCE_OPENINGS[declared_licence()]), text[:80]
    assert "Permission is hereby granted, free of charge" in text


def test_the_wheel_names_its_licence_and_carries_the_file(built: Built) -> None:
    with zipfile.ZipFile(built.wheel) as archive:
        [metadata] = [name for name in archive.namelist() if name.endswith(".dist-info/METADATA")]
        fields = archive.read(metadata).decode()
        licences = [name for name in archive.namelist() if name.endswith("/LICENSE")]
    assert f"License-Expression: {declared_licence()}" in fields.splitlines(), fields[:600]
    assert licences, "the wheel carries no LICENSE file"


def test_the_wheel_carries_them_inside_the_package(built: Built) -> None:
    with zipfile.ZipFile(built.wheel) as archive:
        names = set(archive.namelist())
    packaged = {f"notifier/_content/{name}" for name in shipped_files()}
    assert packaged <= names, sorted(packaged - names)
    assert "notifier/_content/locales/nl/LC_MESSAGES/messages.po" in names
    assert not any(name.startswith(("templates/", "locales/")) for name in names)


@pytest.fixture(scope="module")
def venv(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh venv in a temp folder with only the wheel installed; dependencies borrowed."""
    folder = tmp_path_factory.mktemp("venv") / "venv"
    call([sys.executable, "-m", "venv", "--without-pip", folder], folder.parent)
    python = folder / "bin" / "python"
    call(
        [sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", built.wheel],
        folder.parent,
    )
    site = call([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], folder)
    # A path line only: the .pth files of the test's site-packages, the editable
    # install of the checkout among them, are not run for the venv.
    ours = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (Path(site.strip()) / "borrowed-dependencies.pth").write_text("\n".join(sorted(ours)) + "\n")
    yield folder


def user_env(**settings: str) -> dict[str, str]:
    """A user's shell: no NOTIFIER_ settings but ``settings``, no PYTHONPATH, the venv unset."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("NOTIFIER_", "PYTHON", "VIRTUAL_ENV"))
    }
    chosen = {f"NOTIFIER_{name.upper()}": value for name, value in settings.items()}
    return env | {"PYTHONUNBUFFERED": "1"} | chosen


def test_the_installed_package_finds_its_own_mail(venv: Path, tmp_path: Path) -> None:
    where = call(
        [
            venv / "bin" / "python",
            "-c",
            "import notifier.content as c, notifier.settings as s; "
            "print(c.__file__); print(s.load().templates_dir); print(s.load().locales_dir)",
        ],
        tmp_path,
        user_env(),
    ).split()
    packaged = venv.resolve() / "lib"
    assert all(Path(path).resolve().is_relative_to(packaged) for path in where), where
    assert where[1].endswith("notifier/_content/templates")


def test_an_override_still_wins_and_an_empty_one_stops_the_worker(
    venv: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "mine"
    empty.mkdir()
    result = subprocess.run(
        [venv / "bin" / "notifier", "worker"],
        cwd=tmp_path,
        env=user_env(templates_dir=str(empty)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert f"{empty}: no templates" in result.stderr and "Traceback" not in result.stderr


def test_notifier_serve_from_the_wheel_delivers_an_order_confirmation(
    venv: Path, tmp_path: Path
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    with log.open("wb") as handle:
        server = subprocess.Popen(
            [venv / "bin" / "notifier", "serve", "--port", str(port)],
            cwd=tmp_path,
            env=user_env(api_tokens="wheel-token"),
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(http_ready(f"{base}/healthz"), 60, "notifier serve from the wheel to answer")
        auth = {"Authorization": "Bearer wheel-token"}
        posted = httpx.post(f"{base}/v1/events", json=event("order.placed"), headers=auth)
        assert posted.status_code == 202, posted.text
        [message] = posted.json()["messages"]

        def settled() -> bool:
            status = httpx.get(f"{base}/v1/messages/{message['id']}", headers=auth).json()
            return status["status"] in ("sent", "failed")

        wait_until(settled, 60, "the order confirmation to be sent")
        status = httpx.get(f"{base}/v1/messages/{message['id']}", headers=auth).json()
        assert (status["status"], status["last_error"]) == ("sent", None)
        inbox = httpx.get(f"{base}/dev/inbox").text
        assert inbox.count('href="/dev/inbox/') == 1 and "Bedankt voor je bestelling" in inbox
        assert len(list((tmp_path / ".notifier-inbox").glob("*.eml"))) == 1
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert "Application shutdown complete" in log.read_text()
