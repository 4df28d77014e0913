"""The transports against real receivers on loopback: SMTP with STARTTLS and a login
(aiosmtpd), a webhook receiver that checks the signature, Apprise's ``json://``.

Validates: 16.5
"""

from __future__ import annotations

import json

import httpx
import pytest

from labfleet.outbound import DeliveryFailed, Notice, chat, email, webhook
from tests.helpers import free_port
from tests.notify_rig import smtp
from tests.receivers import Hook, Smtp

__all__ = ["smtp"]  # the fixture

NOTICE = Notice(
    key="41:7",
    subject="[labfleet] CRITICAL raised: unreachable on host 3",
    text="host kvm-3 did not answer SSH",
    level="failure",
    payload={"event": "raised", "alert": {"id": 12, "kind": "unreachable"}},
)
SECRET = "signing-key-0123456789"


def _target(smtp: Smtp, **changes: object) -> email.EmailTarget:
    fields: dict[str, object] = {
        "host": smtp.host,
        "port": smtp.port,
        "sender": "labfleet@lab.example",
        "recipients": ("oncall@lab.example", "kernel@lab.example"),
        "security": "starttls",
        "username": smtp.user,
        "password": smtp.password,
        "ca_file": smtp.ca_file,
        "timeout_s": 5.0,
    } | changes
    return email.EmailTarget(**fields)  # type: ignore[arg-type]


async def test_mail_goes_over_starttls_with_a_login_and_keeps_its_key(smtp: Smtp) -> None:
    before = len(smtp.mailbox.messages)
    await email.check(_target(smtp))
    sent = await email.send(_target(smtp), NOTICE)
    assert sent.status_code == 250
    mail = (await smtp.mailbox.wait(before + 1))[-1]
    assert mail["Subject"] == NOTICE.subject
    assert mail["To"] == "oncall@lab.example, kernel@lab.example"
    assert mail["Message-ID"] == "<41.7@labfleet>"
    assert mail["X-Labfleet-Delivery"] == "41:7"
    assert "did not answer SSH" in mail.get_payload()
    assert smtp.mailbox.logins[-1] == smtp.user


async def test_smtp_failures_say_which_server_and_why_and_never_the_password(smtp: Smtp) -> None:
    with pytest.raises(DeliveryFailed, match="refused the login of 'labfleet'") as refused:
        await email.send(_target(smtp, password="wrong-pass-999"), NOTICE)
    assert "wrong-pass-999" not in refused.value.message
    # Without STARTTLS this server takes nothing; a channel set to "none" is told so.
    with pytest.raises(DeliveryFailed, match=f"SMTP server 127.0.0.1:{smtp.port} answered 530"):
        await email.send(_target(smtp, security="none", username=None), NOTICE)
    # Not trusting the lab's CA: the upgrade fails, the mail is not sent in clear.
    with pytest.raises(DeliveryFailed, match=r"TLS with SMTP server|cannot reach"):
        await email.check(_target(smtp, ca_file=None))
    closed = free_port()
    with pytest.raises(DeliveryFailed, match=f"cannot reach SMTP server 127.0.0.1:{closed}"):
        await email.check(_target(smtp, port=closed))


async def test_a_webhook_is_signed_over_its_raw_body_and_carries_its_idempotency_key() -> None:
    with Hook(SECRET) as hook:
        async with httpx.AsyncClient() as client:
            sent = await webhook.post(client, webhook.WebhookTarget(hook.url, SECRET), NOTICE)
        got = (await hook.wait(1))[0]
    assert sent.status_code == 200
    assert got.signed
    assert json.loads(got.body) == NOTICE.payload
    assert got.headers["Idempotency-Key"] == got.headers["X-Labfleet-Delivery"] == "41:7"
    assert got.headers["X-Labfleet-Event"] == "raised"
    assert got.headers[webhook.SIGNATURE_HEADER] == webhook.sign(SECRET, got.body)
    assert not webhook.verify("another-key-000000", got.body, got.headers[webhook.SIGNATURE_HEADER])


async def test_a_webhook_that_answers_500_or_is_down_fails_with_the_reason() -> None:
    with Hook(SECRET, answers=[500]) as hook:
        async with httpx.AsyncClient() as client:
            with pytest.raises(DeliveryFailed, match="answered 500") as failed:
                await webhook.post(
                    client, webhook.WebhookTarget(hook.url + "?token=t0ps3cret", SECRET), NOTICE
                )
            assert failed.value.status_code == 500
            assert "t0ps3cret" not in failed.value.message
            down = f"http://127.0.0.1:{free_port()}/hook"
            with pytest.raises(DeliveryFailed, match=r"cannot reach http://127\.0\.0\.1"):
                await webhook.post(client, webhook.WebhookTarget(down, SECRET), NOTICE)


async def test_apprise_urls_reach_their_service() -> None:
    assert chat.unknown_urls(("json://127.0.0.1/x", "nosuchservice://abc")) == [1]
    with Hook(None) as hook:
        port = hook.url.split(":")[2].split("/")[0]
        sent = await chat.send(chat.AppriseTarget((f"json://127.0.0.1:{port}/hooks/labfleet",)), NOTICE)
        got = (await hook.wait(1))[0]
    assert "1 services" in sent.detail
    body = json.loads(got.body)
    assert (body["title"], body["message"], body["type"]) == (NOTICE.subject, NOTICE.text, "failure")
    with pytest.raises(DeliveryFailed, match="1 of 1 services did not take"):
        await chat.send(chat.AppriseTarget((f"json://127.0.0.1:{free_port()}/x",), timeout_s=5), NOTICE)
