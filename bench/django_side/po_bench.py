"""The django-post_office side of the delivery baseline; prints one JSON object of timings.

Run by ``bench.postoffice`` with the django venv's interpreter:
``po_bench.py SPEC.json``. The spec holds the templates (converted from
notifier's own rendered mail, so the bytes match) and one context per
message. Four timed phases, each on the same messages:

1. ``send_many`` queues all (rendering happens here, post_office's default);
2. ``send_queued`` with 1 process delivers them;
3. ``mail.send`` queues them again, one call each, as a view would;
4. ``send_queued`` with 2 processes delivers those.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench_settings")

import django  # type: ignore[import-not-found]

django.setup()

from django.core.management import call_command  # type: ignore[import-not-found]  # noqa: E402
from django.db import connection  # type: ignore[import-not-found]  # noqa: E402
from post_office import mail  # type: ignore[import-not-found]  # noqa: E402
from post_office.models import STATUS, Email, EmailTemplate  # type: ignore[import-not-found]  # noqa: E402

SENDER = "Winparts <service@winparts.example>"
CHUNK = 500
"""``send_many`` calls of 500, the batch a shop's bulk job would hand over at once."""


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as handle:
        spec: dict[str, Any] = json.load(handle)
    call_command("migrate", verbosity=0)
    templates = {
        name: EmailTemplate.objects.create(
            name=name,
            subject=parts["subject"],
            content=parts["content"],
            html_content=parts["html_content"],
        )
        for name, parts in spec["templates"].items()
    }
    calls = [
        {
            "recipients": [message["to"]],
            "sender": SENDER,
            "template": templates[message["template"]],
            "context": message["context"],
        }
        for message in spec["messages"]
    ]
    count = len(calls)
    result: dict[str, Any] = {"count": count}

    start = time.perf_counter()
    for offset in range(0, count, CHUNK):
        mail.send_many(calls[offset : offset + CHUNK])
    result["send_many_s"] = time.perf_counter() - start
    result["send_queued_1_s"] = _deliver(processes=1)
    result["sent_after_1"] = Email.objects.filter(status=STATUS.sent).count()
    result["mean_size"] = _mean_size()

    start = time.perf_counter()
    for call in calls:
        mail.send(**call)
    result["mail_send_s"] = time.perf_counter() - start
    result["send_queued_2_s"] = _deliver(processes=2)
    result["sent_after_2"] = Email.objects.filter(status=STATUS.sent).count()
    result["failed"] = Email.objects.filter(status=STATUS.failed).count()
    print(json.dumps(result))


def _deliver(processes: int) -> float:
    """Time post_office's own drain loop (what ``manage.py send_queued_mail`` runs)."""
    connection.close()  # the pool forks; a shared SQLite handle would be copied into it
    start = time.perf_counter()
    mail.send_queued_mail_until_done(
        lockfile=os.path.join(os.environ["PO_BENCH_DIR"], "send"), processes=processes
    )
    return time.perf_counter() - start


def _mean_size() -> float:
    """The mean size of the MIME message post_office builds, from a sample of 50 sent mails."""
    sample = list(Email.objects.filter(status=STATUS.sent)[:50])
    sizes = [len(email.email_message().message().as_bytes()) for email in sample]
    return sum(sizes) / len(sizes) if sizes else 0.0


if __name__ == "__main__":
    main()
