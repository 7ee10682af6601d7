"""Runs inside ``bench/.work/django-venv``, never imported by notifier's own interpreter."""
