"""Reports as real MTAs and feedback loops write them, addressed to a sent mail."""

from __future__ import annotations

from notifier import errors
from notifier.service import Notifier

ORIGINAL = (
    "Return-Path: <{verp}>\r\n"
    "Message-ID: {message_id}\r\n"
    "From: Winparts <service@winparts.example>\r\n"
    "To: Jan de Vries <jan@example.nl>\r\n"
    "Subject: Bedankt voor je bestelling WP-1001\r\n"
    "Date: Mon, 23 Nov 2026 10:00:00 +0100\r\n"
)


def postfix_dsn(verp: str, message_id: str, status: str = "5.1.1", action: str = "failed") -> bytes:
    """A bounce as Postfix's bounce(8) writes it: multipart/report with the headers returned."""
    code = "550" if status.startswith("5") else "452"
    reason = (
        "Recipient address rejected: User unknown in virtual mailbox table"
        if status.startswith("5")
        else "Mailbox full, try again later"
    )
    heading = (
        "I'm sorry to have to inform you that your message could not\r\n"
        "be delivered to one or more recipients. It's attached below."
        if action == "failed"
        else "####################################################################\r\n"
        "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\r\n"
        "####################################################################\r\n"
        "\r\nYour message could not be delivered for more than 4 hour(s)."
    )
    text = (
        "From: MAILER-DAEMON@mail.example.nl (Mail Delivery System)\r\n"
        f"To: {verp}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "Date: Mon, 23 Nov 2026 10:00:05 +0100 (CET)\r\n"
        "Message-Id: <20261123090005.4ABC21F8E1@mail.example.nl>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: multipart/report; report-type=delivery-status;\r\n"
        '\tboundary="4ABC21F8E1.1795424405/mail.example.nl"\r\n'
        "\r\n"
        "This is a MIME-encapsulated message.\r\n"
        "\r\n"
        "--4ABC21F8E1.1795424405/mail.example.nl\r\n"
        "Content-Description: Notification\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n"
        "\r\n"
        "This is the mail system at host mail.example.nl.\r\n"
        "\r\n"
        f"{heading}\r\n"
        "\r\n"
        "For further assistance, please send mail to postmaster.\r\n"
        "\r\n"
        "                   The mail system\r\n"
        "\r\n"
        f"<jan@example.nl>: host mx.example.nl[192.0.2.25] said: {code} {status}\r\n"
        f"    <jan@example.nl>: {reason} (in reply to RCPT TO command)\r\n"
        "\r\n"
        "--4ABC21F8E1.1795424405/mail.example.nl\r\n"
        "Content-Description: Delivery report\r\n"
        "Content-Type: message/delivery-status\r\n"
        "\r\n"
        "Reporting-MTA: dns; mail.example.nl\r\n"
        "X-Postfix-Queue-ID: 4ABC21F8E1\r\n"
        f"X-Postfix-Sender: rfc822; {verp}\r\n"
        "Arrival-Date: Mon, 23 Nov 2026 10:00:01 +0100 (CET)\r\n"
        "\r\n"
        "Final-Recipient: rfc822; jan@example.nl\r\n"
        "Original-Recipient: rfc822;jan@example.nl\r\n"
        f"Action: {action}\r\n"
        f"Status: {status}\r\n"
        "Remote-MTA: dns; mx.example.nl\r\n"
        f"Diagnostic-Code: smtp; {code} {status} <jan@example.nl>: {reason}\r\n"
        "\r\n"
        "--4ABC21F8E1.1795424405/mail.example.nl\r\n"
        "Content-Description: Undelivered Message Headers\r\n"
        "Content-Type: text/rfc822-headers\r\n"
        "\r\n"
        f"{ORIGINAL.format(verp=verp, message_id=message_id)}"
        "\r\n"
        "--4ABC21F8E1.1795424405/mail.example.nl--\r\n"
    )
    return text.encode("ascii")


def exim_dsn(verp: str, message_id: str) -> bytes:
    """A bounce as Exim 4 writes it: its own text, the DSN, and the returned message."""
    boundary = "1795424405-eximdsn-846930886"
    text = (
        f"Return-path: <>\r\n"
        f"From: Mail Delivery System <Mailer-Daemon@mx2.example.org>\r\n"
        f"To: {verp}\r\n"
        "References: " + message_id + "\r\n"
        "Content-Type: multipart/report; report-type=delivery-status; "
        f"boundary={boundary}\r\n"
        "MIME-Version: 1.0\r\n"
        "Subject: Mail delivery failed: returning message to sender\r\n"
        "Message-Id: <E1vXyZa-0001Ab-Cd@mx2.example.org>\r\n"
        "Date: Mon, 23 Nov 2026 10:00:06 +0100\r\n"
        "\r\n"
        f"--{boundary}\r\n"
        "Content-type: text/plain; charset=us-ascii\r\n"
        "\r\n"
        "This message was created automatically by mail delivery software.\r\n"
        "\r\n"
        "A message that you sent could not be delivered to one or more of its\r\n"
        "recipients. This is a permanent error. The following address(es) failed:\r\n"
        "\r\n"
        "  jan@example.nl\r\n"
        "    host mx.example.org [198.51.100.7]\r\n"
        "    SMTP error from remote mail server after RCPT TO:<jan@example.nl>:\r\n"
        "    550 5.1.1 <jan@example.nl>: Recipient address rejected: User unknown\r\n"
        "\r\n"
        f"--{boundary}\r\n"
        "Content-type: message/delivery-status\r\n"
        "\r\n"
        "Reporting-MTA: dns; mx2.example.org\r\n"
        "\r\n"
        "Action: failed\r\n"
        "Final-Recipient: rfc822;jan@example.nl\r\n"
        "Status: 5.0.0\r\n"
        "Remote-MTA: dns; mx.example.org\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 <jan@example.nl>: Recipient address rejected: "
        "User unknown\r\n"
        "\r\n"
        f"--{boundary}\r\n"
        "Content-type: message/rfc822\r\n"
        "\r\n"
        f"{ORIGINAL.format(verp=verp, message_id=message_id)}"
        "\r\n"
        "Hallo Jan\r\n"
        "\r\n"
        f"--{boundary}--\r\n"
    )
    return text.encode("ascii")


def arf_complaint(verp: str, message_id: str) -> bytes:
    """An abuse report (RFC 5965) as a mailbox provider's feedback loop sends it."""
    boundary = "part1_13d.2e68ed54_boundary"
    text = (
        "From: <staff@hotmail.example>\r\n"
        "Date: Mon, 23 Nov 2026 11:00:00 +0100\r\n"
        "Subject: FW: Bedankt voor je bestelling WP-1001\r\n"
        f"To: <{verp}>\r\n"
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=feedback-report; boundary="{boundary}"\r\n'
        "\r\n"
        f"--{boundary}\r\n"
        'Content-Type: text/plain; charset="US-ASCII"\r\n'
        "Content-Transfer-Encoding: 7bit\r\n"
        "\r\n"
        "This is an email abuse report for an email message received from IP\r\n"
        "192.0.2.1 on Mon, 23 Nov 2026 10:00:00 +0100.\r\n"
        "\r\n"
        f"--{boundary}\r\n"
        "Content-Type: message/feedback-report\r\n"
        "\r\n"
        "Feedback-Type: abuse\r\n"
        "User-Agent: SomeGenerator/1.0\r\n"
        "Version: 1\r\n"
        f"Original-Mail-From: <{verp}>\r\n"
        "Original-Rcpt-To: <jan@example.nl>\r\n"
        "Arrival-Date: Mon, 23 Nov 2026 10:00:00 +0100\r\n"
        "Source-IP: 192.0.2.1\r\n"
        "\r\n"
        f"--{boundary}\r\n"
        "Content-Type: message/rfc822\r\n"
        "Content-Disposition: inline\r\n"
        "\r\n"
        f"{ORIGINAL.format(verp=verp, message_id=message_id)}"
        "\r\n"
        "Hallo Jan\r\n"
        f"--{boundary}--\r\n"
    )
    return text.encode("ascii")


def auto_reply(verp: str) -> bytes:
    return (
        "From: Jan de Vries <jan@example.nl>\r\n"
        f"To: {verp}\r\n"
        "Subject: Afwezig: Bedankt voor je bestelling WP-1001\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "Date: Mon, 23 Nov 2026 10:00:07 +0100\r\n"
        "\r\n"
        "Ik ben tot 1 december afwezig.\r\n"
    ).encode("ascii")


def suppression_of(engine: Notifier, email: str) -> str | None:
    """The address's suppression reason as customer service looks it up; None if it has none."""
    try:
        return engine.choices.suppression(email).reason
    except errors.NotFound:
        return None
