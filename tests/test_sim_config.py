"""manager.conf as the course writes it, and the quirks Asterisk 22 reads into it."""

from __future__ import annotations

import pytest

from amilab.sim import classes
from amilab.sim.config import (
    DEFAULT_MANAGER_CONF,
    Acl,
    ConfigError,
    EventFilter,
    FilterCompileError,
    FilterFormatError,
    events_pass_filters,
    parse_acl_entries,
    parse_manager_conf,
)

# Step 2 of the course, verbatim.
COURSE_STEP_2 = """\
[general]
enabled = yes
bindaddr = 0.0.0.0
port = 5038

[admin]
secret = mysecretpassword
deny = 0.0.0.0/0.0.0.0
permit = 127.0.0.1/255.255.255.0
permit = 192.168.0.0/255.255.0.0
permit = 10.0.0.0/255.0.0.0
read = system,call,log,verbose,command,agent,user,config,dtmf,reporting,cdr,dialplan,originate
write = system,call,log,verbose,command,agent,user,config,dtmf,reporting,cdr,dialplan,originate
"""

# Step 9 of the course, verbatim.
COURSE_STEP_9_MONITOR = """\
[monitor]
secret = monitor-password
deny = 0.0.0.0/0.0.0.0
permit = 127.0.0.1/255.255.255.0
read = system,call,reporting
write =
"""

ADMIN_CLASSES = (
    "system,call,log,verbose,command,agent,user,config,dtmf,reporting,cdr,dialplan,originate"
)


def acl(*lines: str) -> Acl:
    rules = []
    for line in lines:
        keyword, _, value = line.partition("=")
        rules.extend(parse_acl_entries(keyword.strip(), value.strip()))
    return Acl(tuple(rules))


# -- the course's text -----------------------------------------------------------


def test_course_step_2_reads_as_asterisk_reads_it():
    config = parse_manager_conf(COURSE_STEP_2)
    assert config.enabled is True
    assert config.bindaddr == "0.0.0.0"
    assert config.port == 5038
    admin = config.user("admin")
    assert admin is not None
    assert admin.secret == "mysecretpassword"
    assert admin.read == admin.write == classes.parse_perms(ADMIN_CLASSES)
    assert admin.write & classes.ORIGINATE and not admin.write & classes.AGI
    assert [str(rule) for rule in admin.acl.rules] == [
        " deny - 0.0.0.0/0.0.0.0",
        "allow - 127.0.0.0/255.255.255.0",
        "allow - 192.168.0.0/255.255.0.0",
        "allow - 10.0.0.0/255.0.0.0",
    ]
    assert config.warnings == ()


def test_course_monitor_user_reads_three_classes_and_writes_none():
    monitor = parse_manager_conf(COURSE_STEP_9_MONITOR).user("monitor")
    assert monitor is not None
    assert monitor.read == classes.SYSTEM | classes.CALL | classes.REPORTING
    assert monitor.write == 0


def test_default_config_is_the_course_users_on_loopback():
    config = parse_manager_conf(DEFAULT_MANAGER_CONF)
    assert config.enabled and config.bindaddr == "127.0.0.1" and config.port == 5038
    assert list(config.users) == ["admin", "monitor"]
    assert config.user("admin").secret == "mysecretpassword"
    assert config.user("monitor").secret == "monitor-password"
    assert config.user("monitor").read == classes.SYSTEM | classes.CALL | classes.REPORTING
    assert config.warnings == ()


def test_defaults_are_asterisks_when_general_is_empty():
    config = parse_manager_conf("[general]\n")
    assert config.enabled is False  # Asterisk's default: no AMI listener
    assert config.bindaddr is None
    assert (config.port, config.authlimit, config.authtimeout) == (5038, 50, 30)
    assert config.timestampevents is False
    assert config.allowmultiplelogin is True and config.displayconnects is True


def test_user_names_match_case_insensitively():
    config = parse_manager_conf(COURSE_STEP_2)
    assert config.user("ADMIN") is config.user("admin")


def test_secret_never_appears_in_the_repr():
    config = parse_manager_conf(DEFAULT_MANAGER_CONF)
    assert "mysecretpassword" not in repr(config)
    assert "monitor-password" not in repr(config.user("monitor"))


def test_a_user_without_read_or_write_gets_no_classes():
    user = parse_manager_conf("[u]\nsecret = s\n").user("u")
    assert (user.read, user.write) == (0, 0)


# -- permission lists ------------------------------------------------------------


def test_a_space_after_the_comma_grants_only_the_first_class():
    config = parse_manager_conf("[u]\nsecret = s\nread = system, call\n")
    assert config.user("u").read == classes.SYSTEM
    assert any("' call'" in w and "trim" in w for w in config.warnings)


def test_class_names_are_case_sensitive():
    config = parse_manager_conf("[u]\nsecret = s\nread = System,call\n")
    assert config.user("u").read == classes.CALL
    assert any("'System'" in w for w in config.warnings)


def test_a_prefix_item_grants_every_class_it_starts():
    user = parse_manager_conf("[u]\nsecret = s\nwrite = c,dtmf\n").user("u")
    expected = (
        classes.CALL | classes.COMMAND | classes.CONFIG | classes.CDR | classes.CC | classes.DTMF
    )
    assert user.write == expected


def test_all_grants_every_class():
    assert parse_manager_conf("[u]\nsecret=s\nread = all\n").user("u").read == classes.ALL


# -- ACL (main/acl.c) --------------------------------------------------------------


def test_course_acl_permits_loopback_and_private_nets_and_denies_the_rest():
    rules = parse_manager_conf(COURSE_STEP_2).user("admin").acl
    assert rules.allows("127.0.0.1")
    assert rules.allows("127.0.0.200")  # the /255.255.255.0 mask covers 127.0.0.x
    assert rules.allows("192.168.1.50") and rules.allows("10.1.2.3")
    assert not rules.allows("8.8.8.8")
    assert not rules.allows("127.0.1.1")


def test_last_matching_rule_wins():
    assert not acl("permit = 10.0.0.0/8", "deny = 10.1.0.0/16").allows("10.1.2.3")
    assert acl("deny = 10.1.0.0/16", "permit = 10.0.0.0/8").allows("10.1.2.3")


def test_no_rules_or_no_match_allows():
    assert Acl().allows("203.0.113.9")
    assert acl("deny = 10.0.0.0/8").allows("192.0.2.1")


def test_address_is_masked_on_load():
    (rule,) = parse_acl_entries("permit", "10.1.2.3/8")
    assert str(rule) == "allow - 10.0.0.0/255.0.0.0"


def test_no_mask_means_one_host():
    rules = acl("deny = 0.0.0.0/0", "permit = 192.0.2.7")
    assert rules.allows("192.0.2.7") and not rules.allows("192.0.2.8")


def test_comma_list_adds_one_rule_per_entry():
    rules = acl("deny = 0.0.0.0/0.0.0.0", "permit = 192.0.2.0/24, 198.51.100.0/255.255.255.0")
    assert len(rules.rules) == 3
    assert rules.allows("198.51.100.4") and rules.allows("192.0.2.4")


def test_exclamation_mark_inverts_an_entry():
    rules = acl("permit = !192.0.2.0/24")
    assert not rules.allows("192.0.2.1")
    assert str(rules.rules[0]).startswith(" deny")


def test_keyword_starting_with_p_permits_anything_else_denies():
    assert parse_acl_entries("Permit", "1.2.3.4")[0].allow
    assert not parse_acl_entries("deny", "1.2.3.4")[0].allow


def test_ipv4_rules_apply_to_ipv4_mapped_clients_but_not_to_ipv6_clients():
    rules = acl("deny = 0.0.0.0/0.0.0.0", "permit = 127.0.0.1/255.255.255.0")
    assert rules.allows("::ffff:127.0.0.1")
    assert not rules.allows("::ffff:8.8.8.8")
    assert rules.allows("::1")  # every rule skipped: no match allows


def test_ipv6_rules_apply_only_to_ipv6_clients():
    rules = acl("deny = ::/0", "permit = ::1")
    assert rules.allows("::1") and not rules.allows("2001:db8::1")
    assert rules.allows("10.0.0.1") and rules.allows("::ffff:10.0.0.1")


def test_ipv6_with_cidr_and_brackets():
    rules = acl("deny = ::/0", "permit = [2001:db8::]/32")
    assert rules.allows("2001:db8:1::5") and not rules.allows("2001:db9::1")


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("10.0.0/8", "not an IP address"),
        ("10.0.0.0/33", "CIDR"),
        ("10.0.0.0/255.0.0.0.0", "not a netmask"),
        ("10.0.0.0/ffff::", "same family"),
        ("host.example.org", "not an IP address"),
    ],
)
def test_a_bad_acl_entry_is_an_error_naming_the_line(value, reason):
    with pytest.raises(ConfigError) as caught:
        parse_manager_conf(f"[u]\nsecret = s\npermit = {value}\n")
    assert caught.value.line == 3
    assert reason in str(caught.value) and "line 3" in str(caught.value)


def test_named_acls_are_refused_with_a_reason():
    with pytest.raises(ConfigError, match="acl.conf"):
        parse_manager_conf("[u]\nsecret = s\nacl = office\n")


# -- general options and the file format ------------------------------------------------


def test_general_options_are_read():
    config = parse_manager_conf(
        "[general]\nenabled=yes\nport = 15038\nauthlimit = 3\nauthtimeout = 5\n"
        "timestampevents = yes\nallowmultiplelogin = no\ndisplayconnects = no\n"
    )
    assert (config.port, config.authlimit, config.authtimeout) == (15038, 3, 5)
    assert config.timestampevents and not config.allowmultiplelogin and not config.displayconnects


def test_unknown_general_key_is_a_warning_not_an_error():
    config = parse_manager_conf("[general]\nenabled = yes\ncolour = blue\n")
    assert config.enabled
    assert config.warnings == ("line 3: invalid keyword 'colour' in [general]; ignored",)


def test_a_yes_no_typo_is_read_as_no_with_a_warning():
    config = parse_manager_conf("[general]\nenabled = yse\n")
    assert config.enabled is False
    assert "neither yes nor no" in config.warnings[0]


def test_users_inherit_allowmultiplelogin_from_general_wherever_it_is_written():
    config = parse_manager_conf("[u]\nsecret = s\n[general]\nallowmultiplelogin = no\n")
    assert config.user("u").allowmultiplelogin is False
    config = parse_manager_conf(
        "[general]\nallowmultiplelogin = no\n[u]\nsecret=s\nallowmultiplelogin=yes\n"
    )
    assert config.user("u").allowmultiplelogin is True


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("[general]\nport = 80\n", 2, "1024 to 65535"),
        ("[general]\nport = fivethousand\n", 2, "1024 to 65535"),
        ("[general]\nbindaddr = localhost\n", 2, "not an IP address"),
        ("[general]\nauthtimeout = 0\n", 2, "at least 1"),
        ("[general]\nenabled yes\n", 2, "name = value"),
        ("enabled = yes\n", 1, "before any [section]"),
        ("[general\n", 1, "[name]"),
        ("[u](!)\n", 1, "templates"),
        ("#include users.conf\n", 1, "#include"),
        ("[u]\nsecret = s\nwritetimeout = 50\n", 3, "at least 100"),
        ("[u]\nread += call\n", 2, "append"),
    ],
)
def test_a_bad_line_names_its_number_and_the_reason(text, line, reason):
    with pytest.raises(ConfigError) as caught:
        parse_manager_conf(text)
    assert caught.value.line == line
    assert reason in caught.value.reason


def test_an_error_message_never_shows_a_secret():
    with pytest.raises(ConfigError) as caught:
        parse_manager_conf("[u]\nsecret hunter2\n")
    assert "hunter2" not in str(caught.value)


def test_comments_and_escaped_semicolons():
    config = parse_manager_conf(
        "; a comment\n[u] ; trailing comment\nsecret = pa\\;ss ; the secret\n"
        ";-- a block\ncomment over lines --;\nread = call\n"
    )
    user = config.user("u")
    assert user.secret == "pa;ss"
    assert user.read == classes.CALL


def test_value_keeps_inner_spaces_but_loses_outer_ones():
    assert parse_manager_conf("[u]\nsecret =   two words  \n").user("u").secret == "two words"


def test_repeated_sections_merge_and_later_values_win():
    config = parse_manager_conf(
        "[u]\nsecret = a\npermit = 10.0.0.1\n[U]\nsecret = b\npermit = 10.0.0.2\n"
    )
    user = config.user("u")
    assert user.secret == "b"
    assert len(user.acl.rules) == 2


def test_reload_keeps_allowmultiplelogin_and_timestampevents_when_removed():
    old = parse_manager_conf("[general]\nallowmultiplelogin = no\ntimestampevents = yes\n")
    new = parse_manager_conf("[general]\nenabled = yes\n", previous=old)
    assert new.allowmultiplelogin is False and new.timestampevents is True


def test_user_without_secret_loads_with_a_warning():
    config = parse_manager_conf("[nobody]\nread = call\n")
    assert config.user("nobody").secret is None
    assert "never log in" in config.warnings[0]


# -- event filters -----------------------------------------------------------------


EVENT = "Event: Newchannel\r\nPrivilege: call,all\r\nChannel: PJSIP/1001-00000001\r\nExten: 1002\r\n\r\n"


def test_legacy_filter_is_a_regex_over_the_whole_event():
    assert EventFilter.parse("eventfilter", "Event: Newchannel").matches("Newchannel", EVENT)
    assert not EventFilter.parse("eventfilter", "Event: Hangup").matches("Newchannel", EVENT)


def test_legacy_filter_with_exclamation_mark_excludes():
    f = EventFilter.parse("eventfilter", "!Channel: PJSIP/1001")
    assert f.exclude and f.matches("Newchannel", EVENT)


def test_advanced_filter_by_name_and_header_with_starts_with():
    f = EventFilter.parse(
        "eventfilter(name(Newchannel),header(Channel),method(starts_with))", "PJSIP/1001"
    )
    assert f.matches("Newchannel", EVENT)
    assert not f.matches("Hangup", EVENT.replace("Newchannel", "Hangup"))


def test_advanced_filter_accepts_only_the_c_spelling_of_methods():
    with pytest.raises(FilterFormatError):
        EventFilter.parse("eventfilter(method(startsWith))", "x")


def test_advanced_filter_action_exclude_and_method_none():
    f = EventFilter.parse("eventfilter(action(exclude),name(VarSet))", "")
    assert f.exclude and f.method == "none"
    assert f.matches("VarSet", "Event: VarSet\r\n\r\n") and not f.matches("Newchannel", EVENT)


def test_filter_errors():
    with pytest.raises(FilterCompileError):
        EventFilter.parse("eventfilter", "Event: (")
    with pytest.raises(FilterFormatError):
        EventFilter.parse("eventfilter", "")
    with pytest.raises(FilterFormatError):
        EventFilter.parse("eventfilter(colour(red))", "x")
    with pytest.raises(FilterFormatError):
        EventFilter.parse("eventfilter(name(X),method(none))", "pattern")


def test_include_then_exclude_filters_combine_as_asterisk():
    include = EventFilter.parse("eventfilter", "Event: New")
    exclude = EventFilter.parse("eventfilter", "!Exten: 1002")
    hangup = EVENT.replace("Newchannel", "Hangup")
    assert events_pass_filters((), "Hangup", hangup)
    assert events_pass_filters((include,), "Newchannel", EVENT)
    assert not events_pass_filters((include,), "Hangup", hangup)
    assert not events_pass_filters((exclude,), "Newchannel", EVENT)
    assert events_pass_filters((exclude,), "Other", "Event: Other\r\n\r\n")
    assert not events_pass_filters((include, exclude), "Newchannel", EVENT)


def test_user_eventfilter_lines_are_loaded_and_a_bad_one_names_its_line():
    user = parse_manager_conf("[u]\nsecret=s\neventfilter = !Event: VarSet\n").user("u")
    assert user.eventfilters[0].exclude
    with pytest.raises(ConfigError) as caught:
        parse_manager_conf("[u]\nsecret=s\neventfilter(method(nope)) = x\n")
    assert caught.value.line == 3
