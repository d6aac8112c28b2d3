"""Settings: production refuses missing or placeholder secrets; development makes them once."""

from __future__ import annotations

import base64
import json
import os
import stat

import pytest

from consent_service.settings import InsecureSettings, Settings

REAL_SECRET = "s3cr3t-" + "q" * 40
REAL_KEK = base64.b64encode(b"\x07" * 32).decode()


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch, tmp_path):
    """Only what a test sets reaches Settings; a default home lands in tmp_path, not the repo."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def production(**values) -> Settings:
    return Settings(consent_service_env="production", **values)


class TestProduction:
    def test_missing_secrets_refuse_to_start_and_are_named(self, tmp_path):
        with pytest.raises(InsecureSettings) as caught:
            production(consent_service_home=tmp_path).resolved_secrets()
        assert "SECRET_KEY" in str(caught.value)
        # The keyring holds the keys now; TEMPLATE_KEK only keeps the keys derived before it.
        assert "TEMPLATE_KEK" not in str(caught.value)

    @pytest.mark.parametrize(
        "placeholder", ["", "change-me", "CHANGE-ME", "changeme", "secret", "dev", "development"]
    )
    def test_placeholder_secret_key_is_refused(self, placeholder):
        with pytest.raises(InsecureSettings) as caught:
            production(secret_key=placeholder, template_kek=REAL_KEK).resolved_secrets()
        assert "SECRET_KEY" in str(caught.value)
        assert "TEMPLATE_KEK" not in str(caught.value)

    @pytest.mark.parametrize("placeholder", ["", "change-me", "Secret"])
    def test_placeholder_template_kek_is_refused(self, placeholder):
        with pytest.raises(InsecureSettings) as caught:
            production(secret_key=REAL_SECRET, template_kek=placeholder).resolved_secrets()
        assert "TEMPLATE_KEK" in str(caught.value)
        assert "SECRET_KEY" not in str(caught.value)

    def test_placeholder_from_the_environment_is_refused(self, monkeypatch):
        monkeypatch.setenv("CONSENT_SERVICE_ENV", "production")
        monkeypatch.setenv("SECRET_KEY", "change-me")
        monkeypatch.setenv("TEMPLATE_KEK", REAL_KEK)
        settings = Settings()
        assert settings.is_production
        with pytest.raises(InsecureSettings, match="SECRET_KEY"):
            settings.resolved_secrets()

    def test_real_secrets_are_used_and_nothing_is_generated(self, tmp_path):
        settings = production(
            consent_service_home=tmp_path, secret_key=REAL_SECRET, template_kek=REAL_KEK
        )
        assert settings.resolved_secrets() == {
            "secret_key": REAL_SECRET,
            "template_kek": REAL_KEK,
        }
        assert not (tmp_path / "secrets.json").exists()

    def test_a_fixed_live_script_seed_is_refused(self, tmp_path):
        # Every live session's script would be the same, so a recording could be made ahead.
        with pytest.raises(InsecureSettings, match="LIVE_SCRIPT_SEED"):
            production(
                consent_service_home=tmp_path,
                secret_key=REAL_SECRET,
                template_kek=REAL_KEK,
                live_script_seed=7,
            ).resolved_secrets()


class TestPlaceholderSecrets:
    """Production refuses every secret left at a placeholder, naming each one."""

    @pytest.mark.parametrize("short", ["x", "a" * 31, "s3cr3t-q"])
    def test_a_short_secret_key_is_refused(self, short):
        with pytest.raises(InsecureSettings, match="SECRET_KEY"):
            production(secret_key=short).resolved_secrets()

    @pytest.mark.parametrize("placeholder", ["Change me please " + "x" * 30, "CHANGE_ME" * 4])
    def test_a_long_placeholder_is_still_a_placeholder(self, placeholder):
        with pytest.raises(InsecureSettings, match="SECRET_KEY"):
            production(secret_key=placeholder).resolved_secrets()

    @pytest.mark.parametrize("kek", ["x", base64.b64encode(b"\x07" * 16).decode(), "not base64!"])
    def test_a_template_kek_that_is_not_32_bytes_of_base64_is_refused(self, kek):
        with pytest.raises(InsecureSettings, match="TEMPLATE_KEK"):
            production(secret_key=REAL_SECRET, template_kek=kek).resolved_secrets()

    @pytest.mark.parametrize("password", [None, "", "password", "change-me", "x"])
    def test_an_smtp_login_with_a_placeholder_password_is_refused(self, password):
        with pytest.raises(InsecureSettings, match="SMTP_PASSWORD"):
            production(
                secret_key=REAL_SECRET, smtp_username="mailer", smtp_password=password
            ).resolved_secrets()

    def test_an_smtp_server_without_login_needs_no_password(self):
        settings = production(secret_key=REAL_SECRET, smtp_host="mailpit", smtp_username="")
        assert settings.resolved_secrets() == {"secret_key": REAL_SECRET}

    @pytest.mark.parametrize(
        "setting",
        [
            "decision_signing_keys",
            "audit_checkpoint_key",
            "keyring_template_kek",
            "keyring_media",
            "keyring_audit_mac",
            "keyring_pseudonyms",
        ],
    )
    def test_key_settings_left_at_a_placeholder_are_refused(self, setting):
        with pytest.raises(InsecureSettings, match=setting.upper()):
            production(secret_key=REAL_SECRET, **{setting: "x"}).resolved_secrets()

    def test_an_empty_optional_secret_is_no_secret(self, monkeypatch):
        # docker-compose passes `METRICS_TOKEN: ${METRICS_TOKEN:-}` when the host has none.
        monkeypatch.setenv("METRICS_TOKEN", "")
        assert "METRICS_TOKEN" not in production(secret_key=REAL_SECRET).placeholder_secrets()
        monkeypatch.setenv("METRICS_TOKEN", "change-me")
        assert "METRICS_TOKEN" in production(secret_key=REAL_SECRET).placeholder_secrets()

    @pytest.mark.parametrize(
        ("setting", "url"),
        [
            ("database_url", "postgresql+psycopg://consent:change-me@postgres/consent"),
            ("database_url", "postgresql+psycopg://consent:consent@postgres/consent"),
            ("broker_url", "redis://:secret@redis:6379/0"),
            ("rate_limit_storage_url", "redis://default:password@redis:6379/2"),
        ],
    )
    def test_placeholder_passwords_in_urls_are_refused(self, setting, url):
        with pytest.raises(InsecureSettings, match=setting.upper()):
            production(secret_key=REAL_SECRET, **{setting: url}).resolved_secrets()

    def test_every_bad_secret_is_named_at_once(self):
        with pytest.raises(InsecureSettings) as caught:
            settings = production(
                secret_key="x", template_kek="x", audit_checkpoint_key="change-me"
            )
            settings.resolved_secrets()
        assert all(
            name in str(caught.value)
            for name in ("SECRET_KEY", "TEMPLATE_KEK", "AUDIT_CHECKPOINT_KEY")
        )

    def test_real_values_pass(self):
        settings = production(
            secret_key=REAL_SECRET,
            template_kek=REAL_KEK,
            smtp_username="mailer",
            smtp_password="a-relay-password-nobody-guesses",
            database_url="postgresql+psycopg://consent:Vq3kP9zL2mXw@postgres/consent",
            broker_url="redis://redis:6379/0",  # no password: not judged here
            decision_signing_keys="/run/secrets/decision-keys.json",
        )
        assert settings.resolved_secrets()["secret_key"] == REAL_SECRET

    def test_development_accepts_placeholders(self, tmp_path):
        settings = Settings(consent_service_home=tmp_path, secret_key="x", smtp_username="u")
        assert settings.resolved_secrets()["secret_key"] == "x"


class TestGalleryShard:
    """A gallery shard (`worker --shard K`) serves searches only: it holds no SECRET_KEY, so a
    host running only shards is not given the key that signs sessions and links."""

    def shard(self, **values) -> Settings:
        return production(gallery_shards=2, gallery_shard=1, **values)

    def test_production_starts_a_shard_without_a_secret_key(self):
        assert self.shard(template_kek=REAL_KEK).resolved_secrets() == {"template_kek": REAL_KEK}
        assert self.shard().resolved_secrets() == {}

    def test_a_secret_key_set_on_the_host_is_not_loaded(self):
        assert "secret_key" not in self.shard(secret_key=REAL_SECRET).resolved_secrets()
        assert "SECRET_KEY" not in self.shard(secret_key="change-me").placeholder_secrets()

    def test_its_other_secrets_are_still_judged(self):
        with pytest.raises(InsecureSettings, match="TEMPLATE_KEK") as caught:
            self.shard(template_kek="change-me").resolved_secrets()
        assert "SECRET_KEY" not in str(caught.value)

    def test_every_other_process_still_needs_one(self):
        with pytest.raises(InsecureSettings, match="SECRET_KEY"):
            production(gallery_shards=2).resolved_secrets()

    def test_in_development_it_reads_the_same_templates_key_as_the_others(self, tmp_path):
        others = Settings(consent_service_home=tmp_path).resolved_secrets()
        shard = Settings(consent_service_home=tmp_path, gallery_shards=2, gallery_shard=0)
        assert shard.resolved_secrets() == {"template_kek": others["template_kek"]}

    def test_its_app_has_no_key_to_sign_with(self, tmp_path):
        from flask import session

        from consent_service.app import create_app

        app = create_app(
            Settings(consent_service_home=tmp_path, gallery_shards=2, gallery_shard=0),
            signing=False,
        )
        assert app.config["SECRET_KEY"] is None
        with app.test_request_context(), pytest.raises(RuntimeError, match="secret key"):
            session["anything"] = 1


class TestDevelopment:
    def test_secrets_are_generated_once_into_the_home_folder(self, tmp_path):
        first = Settings(consent_service_home=tmp_path).resolved_secrets()
        store = tmp_path / "secrets.json"
        assert json.loads(store.read_text()) == first
        assert stat.S_IMODE(store.stat().st_mode) == 0o600
        assert len(base64.b64decode(first["template_kek"])) == 32
        assert len(first["secret_key"]) >= 32

        again = Settings(consent_service_home=tmp_path).resolved_secrets()
        assert again == first

    def test_each_home_gets_its_own_secrets(self, tmp_path):
        a = Settings(consent_service_home=tmp_path / "a").resolved_secrets()
        b = Settings(consent_service_home=tmp_path / "b").resolved_secrets()
        assert a["secret_key"] != b["secret_key"]
        assert a["template_kek"] != b["template_kek"]

    def test_given_secret_wins_and_the_generated_one_is_kept_for_later(self, tmp_path):
        generated = Settings(consent_service_home=tmp_path).resolved_secrets()
        given = Settings(consent_service_home=tmp_path, secret_key=REAL_SECRET).resolved_secrets()
        assert given == {"secret_key": REAL_SECRET, "template_kek": generated["template_kek"]}
        assert Settings(consent_service_home=tmp_path).resolved_secrets() == generated

    def test_a_missing_secret_is_added_to_an_existing_file(self, tmp_path):
        (tmp_path / "secrets.json").write_text(json.dumps({"secret_key": REAL_SECRET}))
        resolved = Settings(consent_service_home=tmp_path).resolved_secrets()
        assert resolved["secret_key"] == REAL_SECRET
        assert len(base64.b64decode(resolved["template_kek"])) == 32
        assert json.loads((tmp_path / "secrets.json").read_text()) == resolved

    def test_home_from_the_environment(self, monkeypatch, tmp_path):
        monkeypatch.setenv("CONSENT_SERVICE_HOME", str(tmp_path / "from-env"))
        settings = Settings()
        assert settings.home == (tmp_path / "from-env").resolve()
        settings.resolved_secrets()
        assert (tmp_path / "from-env" / "secrets.json").exists()


class TestSamplesDir:
    """The demo's and tests' sample cache: CONSENT_SERVICE_SAMPLES, else the XDG cache folder."""

    def test_the_environment_names_the_folder(self, monkeypatch, tmp_path):
        monkeypatch.setenv("CONSENT_SERVICE_SAMPLES", str(tmp_path / "cache"))
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
        assert Settings().samples_dir == tmp_path / "cache"

    def test_else_the_xdg_cache_else_the_home_cache(self, monkeypatch, tmp_path):
        monkeypatch.setenv("CONSENT_SERVICE_SAMPLES", "")  # empty: unset
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
        assert Settings().samples_dir == tmp_path / "xdg" / "consent-service" / "samples"
        monkeypatch.delenv("XDG_CACHE_HOME")
        monkeypatch.setenv("HOME", str(tmp_path))
        assert Settings().samples_dir == tmp_path / ".cache" / "consent-service" / "samples"


class TestWorkerProcesses:
    def test_one_worker_process_per_usable_core_by_default(self):
        assert Settings().worker_processes == len(os.sched_getaffinity(0))

    def test_worker_concurrency_overrides_the_core_count(self, monkeypatch):
        monkeypatch.setenv("WORKER_CONCURRENCY", "3")
        assert Settings().worker_processes == 3


def test_uploads_are_off_in_production_unless_the_operator_turns_them_on(tmp_path):
    def settings(**kw):
        return Settings(consent_service_home=tmp_path, **kw)

    assert settings().uploaded_enrollment_allowed
    assert not settings(consent_service_env="production").uploaded_enrollment_allowed
    assert settings(
        consent_service_env="production", allow_uploaded_enrollment=True
    ).uploaded_enrollment_allowed
    assert not settings(allow_uploaded_enrollment=False).uploaded_enrollment_allowed


def test_the_former_name_of_the_uploads_setting_still_counts(tmp_path, monkeypatch):
    monkeypatch.setenv("ALLOW_PHOTO_ENROLLMENT", "true")
    monkeypatch.setenv("CONSENT_SERVICE_ENV", "production")
    assert Settings(consent_service_home=tmp_path).uploaded_enrollment_allowed
    monkeypatch.delenv("ALLOW_PHOTO_ENROLLMENT")
    monkeypatch.setenv("ALLOW_UPLOADED_ENROLLMENT", "true")
    assert Settings(consent_service_home=tmp_path).uploaded_enrollment_allowed
    monkeypatch.delenv("ALLOW_UPLOADED_ENROLLMENT")
    assert not Settings(consent_service_home=tmp_path).uploaded_enrollment_allowed


def test_the_controller_has_a_name_on_chinese_pages(tmp_path):
    default = Settings(consent_service_home=tmp_path)
    assert default.controller_name_in("en") == "Consent Service operator"
    assert default.controller_name_in("zh-CN") == "同意管理服务运营方"
    company = Settings(consent_service_home=tmp_path, controller_name="Acme Media Ltd")
    assert company.controller_name_in("zh-CN") == "Acme Media Ltd"  # never another's name
    both = Settings(
        consent_service_home=tmp_path, controller_name="Acme Media Ltd", controller_name_zh="艾克美"
    )
    assert (both.controller_name_in("en"), both.controller_name_in("zh-CN")) == (
        "Acme Media Ltd",
        "艾克美",
    )
