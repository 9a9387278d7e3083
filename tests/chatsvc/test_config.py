"""Each configuration rule and each environment variable, on real files."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import msgspec
import pytest

from chatsvc.config import (
    DEFAULT_GUIDANCE,
    DEFAULT_NOTICE,
    ENV_OVERRIDES,
    Config,
    ConfigError,
    Department,
    apply_environment,
    department_red_flags,
    find_config_file,
    load_config,
    parse_config,
)
from triage.models import Urgency

REPO_CONFIG = Path(__file__).resolve().parents[2] / "config.toml"


def test_shipped_config_toml_equals_the_built_in_defaults() -> None:
    shipped = parse_config(REPO_CONFIG.read_text(encoding="utf-8"), str(REPO_CONFIG))
    assert shipped.data_dir == "data"
    assert Config(data_dir="data") == shipped


def test_shipped_config_toml_spells_out_every_key() -> None:
    # Equal to the defaults is not enough: a key left out of the file is equal too.
    raw = tomllib.loads(REPO_CONFIG.read_text(encoding="utf-8"))
    assert set(raw) == set(Config.__struct_fields__)
    for name in set(Config.__struct_fields__) - {"data_dir", "departments"}:
        section = getattr(Config(), name)
        assert set(raw[name]) == set(msgspec.structs.asdict(section)), name
    first, *others = raw["departments"]
    # red_flags is shown as a commented example; guidance once, for the first department.
    assert set(first) == set(Department.__struct_fields__) - {"red_flags"}
    assert all(set(d) == set(first) - {"guidance"} for d in others)
    assert "# [departments.red_flags]" in REPO_CONFIG.read_text(encoding="utf-8")


def test_shipped_config_has_the_three_departments_and_no_usable_secret() -> None:
    shipped = parse_config(REPO_CONFIG.read_text(encoding="utf-8"), str(REPO_CONFIG))
    assert [d.id for d in shipped.departments] == ["general", "paediatrics", "psych"]
    assert {d.routing for d in shipped.departments} == {"pull", "push"}
    assert shipped.auth.token_secret == ""


def test_empty_file_gives_defaults() -> None:
    assert parse_config("", "c.toml") == Config()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("prot = 1", "c.toml: prot: unknown key"),
        ("[server]\nprot = 8080", "c.toml: server.prot: unknown key"),
        ("[sever]\nport = 8080", "c.toml: sever: unknown key"),
        ("[desk]\nnumber = '112'", "c.toml: desk.number: unknown key"),
        (
            "[[departments]]\nid = 'a'\nname = 'A'\nroute = 'pull'",
            "departments[0].route: unknown key",
        ),
    ],
)
def test_unknown_key_is_refused_and_named(text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match="unknown key") as caught:
        parse_config(text, "c.toml")
    assert expected in str(caught.value)


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ('[server]\nport = "8080"', "server.port", "expected `int`, got `str`"),
        ("[server]\nport = 70000", "server.port", "<= 65535"),
        ("[server]\nport = -1", "server.port", ">= 0"),
        ("[server]\nhost = 1", "server.host", "expected `str`"),
        ("[server]\nshutdown_timeout_s = 0", "server.shutdown_timeout_s", "> 0"),
        ("[redis]\nconnect_timeout_s = -2.0", "redis.connect_timeout_s", "> 0"),
        ("[auth]\ntoken_ttl_s = 0", "auth.token_ttl_s", ">= 1"),
        ("[limits]\nmax_frame_bytes = 0", "limits.max_frame_bytes", ">= 1"),
        ("[log]\nlevel = 'loud'", "log.level", "invalid enum value 'loud'"),
        ("[log]\nformat = 'xml'", "log.format", "invalid enum value 'xml'"),
        ("data_dir = 3", "data_dir", "expected `str`"),
        ("[[departments]]\nid = 'A B'\nname = 'x'", "departments[0].id", "matching regex"),
        ("[[departments]]\nid = 'a'\nname = ''", "departments[0].name", "length >= 1"),
        ("[[departments]]\nid = 'a'\nname = 'A'\nrouting = 'rr'", "departments[0].routing", "'rr'"),
        (
            "[[departments]]\nid = 'a'\nname = 'A'\nmax_wait_s = 0",
            "departments[0].max_wait_s",
            ">= 1",
        ),
        ("[[departments]]\nname = 'A'", "departments[0]", "missing required field `id`"),
        ("[server]\nallowed_origins = 'https://a.example'", "server.allowed_origins", "`array`"),
        ("[server]\nallowed_origins = [1]", "server.allowed_origins[0]", "expected `str`"),
        ("[server]\ntrusted_proxy_header = 1", "server.trusted_proxy_header", "expected `str`"),
        ("[auth]\nguest_sessions_per_minute = 0", "auth.guest_sessions_per_minute", ">= 1"),
        ("[limits]\nframes_per_second = 0", "limits.frames_per_second", "> 0"),
        ("[limits]\nframes_per_second = -1.5", "limits.frames_per_second", "> 0"),
        ("[limits]\nframe_burst = 0", "limits.frame_burst", ">= 1"),
        ("[limits]\nframe_burst = 2.5", "limits.frame_burst", "expected `int`"),
        ("[limits]\nmax_violations_per_minute = 0", "limits.max_violations_per_minute", ">= 1"),
        ("[desk]\nemergency_number = ''", "desk.emergency_number", "length >= 1"),
        ("[desk]\nemergency_number = '1234567890123456789012'", "desk.emergency_number", "<= 20"),
        ("[desk]\nemergency_number = 120", "desk.emergency_number", "expected `str`"),
        ("[desk]\nnotice = 'Call 120'", "desk.notice", "expected `object`"),
        ("[desk.notice]\nen = 1", "desk.notice", "expected `str`"),
        (
            "[[departments]]\nid = 'a'\nname = 'A'\n[departments.guidance]\nen = 2",
            "departments[0].guidance",
            "expected `str`",
        ),
    ],
)
def test_wrong_type_or_value_is_refused_and_names_the_key(text: str, key: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "c.toml")
    message = str(caught.value)
    assert message.startswith(f"c.toml: {key}"), message
    assert reason in message


def test_duplicate_department_ids_are_refused() -> None:
    text = "[[departments]]\nid = 'a'\nname = 'A'\n[[departments]]\nid = 'a'\nname = 'B'\n"
    with pytest.raises(ConfigError, match=r"departments\[1\]\.id: duplicate department id 'a'"):
        parse_config(text, "c.toml")


def test_an_empty_department_list_is_refused() -> None:
    with pytest.raises(ConfigError, match="at least one"):
        parse_config("departments = []", "c.toml")


def test_configured_departments_replace_the_defaults() -> None:
    config = parse_config("[[departments]]\nid = 'derm'\nname = 'Dermatology'\n", "c.toml")
    assert [(d.id, d.routing, d.max_wait_s) for d in config.departments] == [("derm", "pull", 1800)]


def test_a_short_token_secret_is_refused() -> None:
    with pytest.raises(ConfigError, match="auth.token_secret: must be at least 32"):
        parse_config("[auth]\ntoken_secret = 'changeme'", "c.toml")


def test_a_redis_url_of_another_scheme_is_refused() -> None:
    with pytest.raises(ConfigError, match="redis.url: must start with"):
        parse_config("[redis]\nurl = 'http://localhost:6379'", "c.toml")


@pytest.mark.parametrize(
    "origin",
    [
        "clinic.example",
        "https://clinic.example/",
        "https://clinic.example/chat",
        "https://clinic.example?x=1",
        "ftp://clinic.example",
        "https://",
        "https://clinic.example:",
        "https://clinic.example:123456",
        "https://user@clinic.example",
        "*",
        "",
        "https://clinic.example\n",
    ],
)
def test_an_origin_that_is_not_scheme_host_port_is_refused(origin: str) -> None:
    # A TOML basic string takes JSON's escapes.
    text = f"[server]\nallowed_origins = ['https://ok.example', {json.dumps(origin)}]"
    message = f"c.toml: server.allowed_origins: {origin!r} is not scheme://host[:port]"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "c.toml")
    assert str(caught.value) == message


def test_origins_of_scheme_host_and_port_are_accepted() -> None:
    origins = ("https://clinic.example", "http://localhost:8080", "https://10.0.0.5:443")
    config = parse_config(f"[server]\nallowed_origins = {list(origins)!r}", "c.toml")
    assert config.server.allowed_origins == origins


def test_new_server_auth_and_limits_keys_are_read() -> None:
    text = (
        "[server]\ntrusted_proxy_header = 'X-Forwarded-For'\n"
        "[auth]\nguest_sessions_per_minute = 3\n"
        "[limits]\nframes_per_second = 0.5\nframe_burst = 2\nmax_violations_per_minute = 5\n"
    )
    config = parse_config(text, "c.toml")
    assert config.server.trusted_proxy_header == "X-Forwarded-For"
    assert config.auth.guest_sessions_per_minute == 3
    limits = config.limits
    assert (limits.frames_per_second, limits.frame_burst, limits.max_violations_per_minute) == (
        0.5,
        2,
        5,
    )


def test_the_desk_defaults_to_120_and_the_shipped_notice_and_guidance() -> None:
    config = Config()
    assert config.desk.emergency_number == "120"
    assert config.desk.notice == DEFAULT_NOTICE
    assert set(DEFAULT_NOTICE) == set(DEFAULT_GUIDANCE) == {"en", "zh"}
    assert all(d.guidance == DEFAULT_GUIDANCE for d in config.departments)
    texts = [*DEFAULT_NOTICE.values(), *DEFAULT_GUIDANCE.values()]
    assert all("{number}" in text for text in texts)


def test_a_configured_notice_replaces_the_shipped_one_whole() -> None:
    text = "[desk]\nemergency_number = '112'\n[desk.notice]\nen = 'Not for emergencies.'\n"
    config = parse_config(text, "c.toml")
    assert config.desk.emergency_number == "112"
    assert config.desk.notice == {"en": "Not for emergencies."}  # no zh left over


def test_a_notice_without_english_is_refused() -> None:
    text = "[desk.notice]\nzh = '本服务不处理急症。'\nfr = 'Pas pour les urgences.'\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "c.toml")
    assert str(caught.value) == 'c.toml: desk.notice: an English ("en") text is required'


def test_a_department_guidance_without_english_is_refused_and_named_by_index() -> None:
    text = (
        "[[departments]]\nid = 'a'\nname = 'A'\n"
        "[[departments]]\nid = 'b'\nname = 'B'\n[departments.guidance]\nzh = '请拨打 {number}'\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "c.toml")
    assert str(caught.value) == (
        'c.toml: departments[1].guidance: an English ("en") text is required'
    )


def test_a_department_guidance_replaces_the_shipped_one_for_that_department_only() -> None:
    text = (
        "[[departments]]\nid = 'a'\nname = 'A'\n[departments.guidance]\nen = 'Call {number}.'\n"
        "[[departments]]\nid = 'b'\nname = 'B'\n"
    )
    first, second = parse_config(text, "c.toml").departments
    assert first.guidance == {"en": "Call {number}."}
    assert second.guidance == DEFAULT_GUIDANCE


def test_invalid_toml_names_the_file() -> None:
    with pytest.raises(ConfigError, match="c.toml: not valid TOML"):
        parse_config("[server\nport = 1", "c.toml")


GOOD_VALUES = {
    "CHATSVC_SERVER_HOST": ("0.0.0.0", lambda c: c.server.host, "0.0.0.0"),
    "CHATSVC_SERVER_PORT": ("9090", lambda c: c.server.port, 9090),
    "CHATSVC_REDIS_URL": (
        "redis://10.0.0.5:6380/2",
        lambda c: c.redis.url,
        "redis://10.0.0.5:6380/2",
    ),
    "CHATSVC_DATA_DIR": ("/srv/chatsvc", lambda c: c.data_dir, "/srv/chatsvc"),
    "CHATSVC_AUTH_TOKEN_SECRET": ("s" * 40, lambda c: c.auth.token_secret, "s" * 40),
    "CHATSVC_AUTH_TOKEN_TTL_S": ("600", lambda c: c.auth.token_ttl_s, 600),
    "CHATSVC_LOG_LEVEL": ("debug", lambda c: c.log.level, "debug"),
    "CHATSVC_LOG_FORMAT": ("json", lambda c: c.log.format, "json"),
}

BAD_VALUES = {
    "CHATSVC_SERVER_HOST": None,  # any string is a host name to try
    "CHATSVC_SERVER_PORT": "eighty",
    "CHATSVC_REDIS_URL": "localhost:6379",
    "CHATSVC_DATA_DIR": None,  # any string is a path
    "CHATSVC_AUTH_TOKEN_SECRET": "short",
    "CHATSVC_AUTH_TOKEN_TTL_S": "-5",
    "CHATSVC_LOG_LEVEL": "verbose",
    "CHATSVC_LOG_FORMAT": "xml",
}


def test_every_documented_variable_has_a_test() -> None:
    assert {o.variable for o in ENV_OVERRIDES} == set(GOOD_VALUES) == set(BAD_VALUES)


@pytest.mark.parametrize("variable", sorted(GOOD_VALUES))
def test_environment_variable_overrides_its_key(variable: str) -> None:
    raw, read, expected = GOOD_VALUES[variable]
    config = apply_environment(Config(), {variable: raw})
    assert read(config) == expected
    assert read(Config()) != expected


@pytest.mark.parametrize("variable", sorted(v for v, bad in BAD_VALUES.items() if bad))
def test_bad_environment_value_names_the_variable(variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        apply_environment(Config(), {variable: str(BAD_VALUES[variable])})
    assert str(caught.value).startswith(f"environment variable {variable}: ")


def test_bad_environment_port_names_the_variable_exactly() -> None:
    with pytest.raises(
        ConfigError, match="^environment variable CHATSVC_SERVER_PORT: expected `int`"
    ):
        apply_environment(Config(), {"CHATSVC_SERVER_PORT": "eighty"})


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[server]\nport = 8000\n", encoding="utf-8")
    loaded = load_config(str(path), {"CHATSVC_SERVER_PORT": "8001"})
    assert loaded.config.server.port == 8001
    assert loaded.source == str(path)


def test_relative_data_dir_is_taken_from_the_files_folder(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    path = tmp_path / "etc" / "c.toml"
    path.write_text('data_dir = "../var/chatsvc"\n', encoding="utf-8")
    loaded = load_config(str(path), {})
    assert loaded.data_dir == (tmp_path / "var" / "chatsvc").resolve()


def test_data_dir_from_the_environment_is_taken_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    loaded = load_config(None, {"CHATSVC_DATA_DIR": "state"})
    assert loaded.data_dir == (tmp_path / "state").resolve()


def test_empty_data_dir_defaults_to_xdg_data_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    loaded = load_config(None, {"XDG_DATA_HOME": "/xdg"})
    assert loaded.source == "built-in defaults"
    assert loaded.data_dir == Path("/xdg/chatsvc")


def test_config_file_is_found_by_flag_then_variable_then_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert find_config_file(None, {}) is None
    (tmp_path / "config.toml").write_text("", encoding="utf-8")
    assert find_config_file(None, {}) == tmp_path / "config.toml"
    assert find_config_file(None, {"CHATSVC_CONFIG": "/etc/c.toml"}) == Path("/etc/c.toml")
    assert find_config_file("/x.toml", {"CHATSVC_CONFIG": "/etc/c.toml"}) == Path("/x.toml")


def test_a_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope.toml: cannot read the config file"):
        load_config(str(tmp_path / "nope.toml"), {})


def test_an_empty_data_dir_variable_leaves_the_file_setting(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('data_dir = "state"\n', encoding="utf-8")
    loaded = load_config(str(path), {"CHATSVC_DATA_DIR": ""})
    assert loaded.data_dir == (tmp_path / "state").resolve()


def test_department_red_flags_combine_the_preset_and_their_own() -> None:
    text = (
        "[[departments]]\nid = 'derm'\nname = 'Dermatology'\nred_flags_preset = 'none'\n"
        "[departments.red_flags]\n'spreading rash' = 'urgent'\n'皮疹扩散' = 'urgent'\n"
    )
    config = parse_config(text, "c.toml")
    assert department_red_flags(config.departments[0]) == {
        "spreading rash": Urgency.URGENT,
        "皮疹扩散": Urgency.URGENT,
    }
    shipped = department_red_flags(Config().departments[0])
    assert shipped["chest pain"] is Urgency.EMERGENCY and shipped["胸痛"] is Urgency.EMERGENCY


@pytest.mark.parametrize(
    ("table", "reason"),
    [
        ("'chest pain' = 'routine'", "invalid enum value 'routine'"),
        ("'!!!' = 'urgent'", "departments[0].red_flags:"),
        ("'Chest Pain' = 'urgent'\n'chest pain' = 'emergency'", "departments[0].red_flags:"),
    ],
)
def test_unusable_red_flags_are_refused(table: str, reason: str) -> None:
    head = "[[departments]]\nid = 'a'\nname = 'A'\nred_flags_preset = 'none'\n"
    text = f"{head}[departments.red_flags]\n{table}\n"
    with pytest.raises(ConfigError, match="departments\\[0\\].red_flags") as caught:
        parse_config(text, "c.toml")
    assert reason in str(caught.value)


def test_triage_settings_are_validated() -> None:
    with pytest.raises(ConfigError, match="triage.eta_window_s: expected `int` <= 3600"):
        parse_config("[triage]\neta_window_s = 7200", "c.toml")
    config = parse_config("[triage]\naccept_timeout_s = 45", "c.toml")
    assert config.triage.accept_timeout_s == 45
