"""The django-post_office baseline: the issue's reference, measured here, on this run's sink.

Its venv is built by the benchmark (``bench/.work/django-venv``) and reused
while it imports. Its templates are not hand-written look-alikes: each
(kind, locale) of the mix is rendered by notifier with sentinel values, and
the sentinels are turned back into Django variables (the order lines into a
``{% for %}``), so post_office renders the same HTML and text, with the same
variables, that notifier does. Money comes pre-formatted in its context (a
Django shop would format it in the view); that favours post_office a little.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from babel.numbers import format_currency

from bench import workload
from bench.common import BENCH_DIR, WORK_DIR, fresh_dir
from bench.sinks import Sink
from notifier.flows import kinds
from notifier.service import Notifier

VENV = WORK_DIR / "django-venv"
REQUIREMENTS = ("django>=5.2,<5.3", "django-post_office>=3.12")
SCRIPT = BENCH_DIR / "django_side" / "po_bench.py"

_SENTINELS = {
    "ZQNAME": "name",
    "ZQNUMBER": "order_number",
    "ZQSKU": "line.sku",
    "ZQLINENAME": "line.name",
    "ZQADDRNAME": "address.name",
    "ZQSTREET": "address.street",
    "ZQPOSTCODE": "address.postcode",
    "ZQCITY": "address.city",
    "ZQCARRIER": "carrier",
    "https://zqtracking.example/ZQTRACK": "tracking_url",
    "https://notifier.bench/preferences/ZQTOKEN": "preferences_url",
    "https://notifier.bench/unsubscribe/ZQTOKEN": "unsubscribe_url",
}
_TOTAL = "7771.11"
_PRICE = "8881.22"
_QUANTITY = 97
_NBSP = r"(?:\s|\xa0|&nbsp;|&#160;|&#xa0;)*"


@dataclass(frozen=True)
class PostOfficeResult:
    count: int
    send_many: float
    mail_send: float
    send_queued_1: float
    send_queued_2: float
    sent_ok: bool
    mean_size: float

    @property
    def e2e_mail_send(self) -> float:
        """Queue with ``mail.send`` then deliver with one process: render + queue + send."""
        return 1 / (1 / self.mail_send + 1 / self.send_queued_1)

    @property
    def e2e_send_many(self) -> float:
        return 1 / (1 / self.send_many + 1 / self.send_queued_1)


def median_of(results: Sequence[PostOfficeResult]) -> PostOfficeResult:
    """Each figure's median over runs: on a shared VM one run of post_office can vary by a third."""

    def median(figure: str) -> float:
        return float(statistics.median(getattr(result, figure) for result in results))

    return PostOfficeResult(
        count=results[0].count,
        send_many=median("send_many"),
        mail_send=median("mail_send"),
        send_queued_1=median("send_queued_1"),
        send_queued_2=median("send_queued_2"),
        sent_ok=all(result.sent_ok for result in results),
        mean_size=results[0].mean_size,
    )


def ensure_venv() -> tuple[Path | None, str]:
    """The venv's python, or None and why not (no network to PyPI, for instance)."""
    python = VENV / "bin" / "python"
    check = [
        str(python),
        "-c",
        "import django, importlib.util as u; assert u.find_spec('post_office')",
    ]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python, "reused"
    try:
        subprocess.run(
            [sys.executable, "-m", "venv", "--clear", str(VENV)], check=True, capture_output=True
        )
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", *REQUIREMENTS],
            check=True,
            capture_output=True,
            timeout=600,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        output = getattr(exc, "stderr", b"") or b""
        reason = output.decode(errors="replace").strip().splitlines()[-1:] or [str(exc)]
        return None, f"could not build {VENV}: {reason[0][:300]}"
    return python, "built"


def run(sink: Sink, count: int) -> PostOfficeResult:
    """Convert the templates, write the spec, run the Django side, read its timings."""
    python, _how = ensure_venv()
    assert python is not None
    folder = fresh_dir("post_office")
    engine = Notifier(workload.settings(workload.sqlite_url(folder), sink.port))
    try:
        templates = {
            f"{kind}_{locale}": django_template(engine, kind, locale)
            for kind in workload.KIND_MIX
            for locale in workload.LOCALES
        }
    finally:
        engine.close()
    messages = [_message(planned) for planned in workload.plans(count)]
    spec = folder / "spec.json"
    spec.write_text(json.dumps({"templates": templates, "messages": messages}), encoding="utf-8")
    env = dict(os.environ, PO_BENCH_DIR=str(folder), PO_BENCH_SMTP_PORT=str(sink.port))
    done = subprocess.run(
        [str(python), str(SCRIPT), str(spec)], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"post_office run failed:\n{done.stderr[-3000:]}")
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    n = out["count"]
    return PostOfficeResult(
        count=n,
        send_many=n / out["send_many_s"],
        mail_send=n / out["mail_send_s"],
        send_queued_1=n / out["send_queued_1_s"],
        send_queued_2=n / out["send_queued_2_s"],
        sent_ok=out["sent_after_1"] == n and out["sent_after_2"] == 2 * n,
        mean_size=out["mean_size"],
    )


def django_template(engine: Notifier, kind: str, locale: str) -> dict[str, str]:
    """notifier's rendering of ``kind`` in ``locale``, as a Django template with the same holes."""
    context = _sentinel_context(engine, kind, locale)
    mail = engine.renderer.render(kind, locale, context)
    return {
        "subject": _holes(_escape(mail.subject)),
        "content": _holes(_loop(_escape(mail.text), text=True)),
        "html_content": _holes(_loop(_escape(mail.html), text=False)),
    }


def _sentinel_context(engine: Notifier, kind: str, locale: str) -> dict[str, Any]:
    settings = engine.settings
    order = {
        "id": "ZQORDERID",
        "number": "ZQNUMBER",
        "currency": "EUR",
        "total": _TOTAL,
        "lines": [
            {"sku": "ZQSKU", "name": "ZQLINENAME", "quantity": _QUANTITY, "unit_price": _PRICE}
        ],
        "shipping_address": {
            "name": "ZQADDRNAME",
            "street": "ZQSTREET",
            "postcode": "ZQPOSTCODE",
            "city": "ZQCITY",
            "country": "NL",
        },
    }
    meta = kinds.get(kind)
    links = {
        "preferences_url": "https://notifier.bench/preferences/ZQTOKEN",
        "shop_url": settings.shop_url,
        "unsubscribe_url": "https://notifier.bench/unsubscribe/ZQTOKEN",
        "review_url": "https://www.winparts.example/review?order=ZQNUMBER",
    }
    return {
        "order": order,
        "data": {
            "carrier": "ZQCARRIER",
            "tracking_url": "https://zqtracking.example/ZQTRACK",
            "question": "ZQQUESTION",
        },
        "customer": {"id": "C1", "name": "ZQNAME", "email": "zq@example.nl", "locale": locale},
        "shop": {
            "name": settings.shop_name,
            "legal_name": settings.company_name,
            "address": settings.company_address,
            "kvk": settings.company_kvk,
            "shop_url": settings.shop_url,
            "support_email": "service@winparts.example",
        },
        "links": links,
        "message": {
            "id": "ZQMESSAGE",
            "kind": kind,
            "category": meta.category,
            "unsubscribable": meta.unsubscribable,
        },
    }


def _escape(source: str) -> str:
    """Make literal ``{{``/``{%``/``{#`` in the rendered mail inert for Django."""
    return (
        source.replace("{%", "\x00OB\x00")
        .replace("{{", "\x00OV\x00")
        .replace("{#", "\x00OC\x00")
        .replace("\x00OB\x00", "{% templatetag openblock %}")
        .replace("\x00OV\x00", "{% templatetag openvariable %}")
        .replace("\x00OC\x00", "{% templatetag opencomment %}")
    )


def _loop(source: str, *, text: bool) -> str:
    """Wrap the one order line (a ``<tr>``, or its lines of text) in ``{% for line in lines %}``."""
    at = source.find("ZQSKU")
    if at < 0:
        return source
    if text:
        start = source.rfind("\n", 0, at) + 1
        price = _price_pattern().search(source, at)
        end = source.find("\n", price.end() if price else at) + 1 or len(source)
    else:
        start = source.rfind("<tr", 0, at)
        end = source.find("</tr>", at) + len("</tr>")
    return (
        source[:start]
        + "{% for line in lines %}"
        + source[start:end]
        + "{% endfor %}"
        + source[end:]
    )


def _price_pattern() -> re.Pattern[str]:
    return re.compile(r"(?:€" + _NBSP + r")?8[.,]?881[.,]22(?:" + _NBSP + r"€)?")


def _holes(source: str) -> str:
    """Replace every sentinel by its Django variable."""
    source = re.sub(
        r"(?:€" + _NBSP + r")?7[.,]?771[.,]11(?:" + _NBSP + r"€)?", "{{ total }}", source
    )
    source = _price_pattern().sub("{{ line.price }}", source)
    source = re.sub(rf"\b{_QUANTITY}\b", "{{ line.quantity }}", source)
    source = source.replace("ZQQUESTION", "{{ question|linebreaksbr }}")
    for sentinel, variable in sorted(_SENTINELS.items(), key=lambda item: -len(item[0])):
        source = source.replace(sentinel, "{{ " + variable + " }}")
    return source


def _message(planned: workload.Planned) -> dict[str, Any]:
    """One message for post_office: the template's name and its (pre-formatted) variables."""
    number = int(planned.customer_id[1:])
    order = planned.context["order"]
    locale = planned.locale
    token = f"t{planned.index:08d}.{'x' * 86}"  # the length of notifier's signed token
    return {
        "template": f"{planned.kind}_{locale}",
        "to": workload.customer_email(number),
        "context": {
            "name": workload.customer_name(number),
            "order_number": order["number"],
            "total": format_currency(order["total"], "EUR", locale=locale),
            "lines": [
                {
                    "sku": line["sku"],
                    "name": line["name"],
                    "quantity": line["quantity"],
                    "price": format_currency(line["unit_price"], "EUR", locale=locale),
                }
                for line in order["lines"]
            ],
            "address": order["shipping_address"],
            "carrier": planned.context["data"].get("carrier", ""),
            "tracking_url": planned.context["data"].get("tracking_url", ""),
            "question": planned.context["data"].get("question", ""),
            "preferences_url": f"https://notifier.bench/preferences/{token}",
            "unsubscribe_url": f"https://notifier.bench/unsubscribe/{token}",
        },
    }
