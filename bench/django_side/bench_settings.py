"""A standalone Django settings module for the django-post_office baseline.

Everything that could tilt the comparison is matched to notifier's side:
SQLite in WAL mode with ``synchronous=FULL`` and immediate transactions
(notifier's own pragmas since 7ed7bc4), the same SMTP sink, batches of 500, 8 sending
threads per process (notifier's 8 connections), and a log row per delivery
(``LOG_LEVEL`` 2, like notifier's attempt rows).
"""

from __future__ import annotations

import os

_FOLDER = os.environ["PO_BENCH_DIR"]

SECRET_KEY = "bench-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "Europe/Amsterdam"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = ["post_office"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.path.join(_FOLDER, "post_office.db"),
        "OPTIONS": {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;",
        },
    }
}
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}]
EMAIL_BACKEND = "post_office.EmailBackend"
EMAIL_HOST = "127.0.0.1"
EMAIL_PORT = int(os.environ["PO_BENCH_SMTP_PORT"])
DEFAULT_FROM_EMAIL = "Winparts <service@winparts.example>"
POST_OFFICE = {
    "BACKENDS": {"default": "django.core.mail.backends.smtp.EmailBackend"},
    "BATCH_SIZE": 500,
    "THREADS_PER_PROCESS": 8,
    "LOG_LEVEL": 2,
    "MESSAGE_ID_ENABLED": True,
    "MESSAGE_ID_FQDN": "winparts.example",
    "LOCK_FILE_NAME": os.path.join(_FOLDER, "post_office"),
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"post_office": {"handlers": ["console"], "level": "WARNING"}},
}
