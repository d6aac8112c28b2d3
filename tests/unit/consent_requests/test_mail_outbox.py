"""The embedded default's mail: `.eml` files in the home's outbox, listed by the CLI."""

from __future__ import annotations

from email.message import EmailMessage

from click.testing import CliRunner

from consent_service.cli import main
from consent_service.mail import OutboxMailer, SmtpMailer, mailer_for
from consent_service.settings import Settings


def test_without_smtp_mail_goes_to_the_outbox_and_the_cli_lists_it(tmp_path):
    settings = Settings(consent_service_home=tmp_path)
    mailer = mailer_for(settings)
    assert isinstance(mailer, OutboxMailer)
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@example.org", "b@example.org", "Asked"
    msg.set_content("Open http://127.0.0.1:5000/requests/x?k=y")
    mailer.send(msg)
    (eml,) = (tmp_path / "outbox").glob("*.eml")
    assert b"Subject: Asked" in eml.read_bytes()
    result = CliRunner().invoke(
        main, ["mail", "outbox", "--full"], env={"CONSENT_SERVICE_HOME": str(tmp_path)}
    )
    assert result.exit_code == 0, result.output
    assert "to b@example.org: Asked" in result.output and "/requests/x?k=y" in result.output


def test_smtp_is_chosen_when_configured(tmp_path):
    settings = Settings(consent_service_home=tmp_path, smtp_host="mail.example.org")
    assert isinstance(mailer_for(settings), SmtpMailer)
