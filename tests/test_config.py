"""zkpy.server.config: zoo.cfg, JVM flags and derived settings, as Apache ZooKeeper 3.8 reads them."""

from __future__ import annotations

import logging
import random
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.servers import apache_classpath, four_letter, free_port, make_server
from zkpy.server.config import (
    FOUR_LETTER_WORDS,
    ConfigError,
    PeerAddress,
    QuorumServerSpec,
    ServerConfig,
    default_config,
    java_trim,
    load_config,
    parse_jvm_flags,
    parse_properties,
)

# ---------------------------------------------------------------------------------------------
# helpers


def write(tmp_path: Path, text: str, name: str = "zoo.cfg") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def minimal(tmp_path: Path) -> str:
    """The two keys every file below needs, absolute so no relative-path warning appears."""
    return f"dataDir={tmp_path / 'data'}\nclientPort=2181\n"


def load(tmp_path: Path, extra: str = "", env: dict[str, str] | None = None) -> ServerConfig:
    return load_config(write(tmp_path, minimal(tmp_path) + extra), env or {})


def refused(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), env or {})
    return info.value


def properties(text: str) -> dict[str, str]:
    return {e.key: e.value for e in parse_properties(text)}


# ---------------------------------------------------------------------------------------------
# defaults


def test_default_config_is_standalone_on_loopback_2181_with_data_in_zkpy_data():
    cfg = default_config()
    assert (cfg.client_port_address, cfg.client_port) == ("127.0.0.1", 2181)
    assert cfg.data_dir == Path("zkpy-data") and cfg.data_log_dir == Path("zkpy-data")
    assert not cfg.is_quorum and cfg.servers == {} and cfg.source is None


def test_default_config_has_zookeeper_defaults():
    cfg = default_config()
    assert cfg.tick_time_ms == 3000
    assert (cfg.min_session_timeout_ms, cfg.max_session_timeout_ms) == (6000, 60000)
    assert cfg.max_client_cnxns == 60 and cfg.max_cnxns == 0
    assert cfg.four_letter_words == frozenset({"srvr"})
    assert (cfg.snap_count, cfg.snap_size_limit_kb, cfg.pre_alloc_size_kb) == (100_000, 4_194_304, 65_536)
    assert cfg.force_sync and cfg.jute_max_buffer == 0xFFFFF and cfg.global_outstanding_limit == 1000
    assert (cfg.autopurge_snap_retain_count, cfg.autopurge_purge_interval_hours) == (3, 0)
    assert (cfg.admin_enable_server, cfg.admin_server_address, cfg.admin_server_port) == (True, "127.0.0.1", 8080)
    assert cfg.admin_command_url == "/commands"
    assert cfg.container_check_interval_ms == 60_000 and cfg.container_max_per_minute == 10_000
    assert cfg.close_session_txn_enabled and cfg.digest_enabled and not cfg.skip_acl
    assert not cfg.extended_types_enabled and not cfg.read_only_mode_enabled
    assert cfg.super_digest is None and cfg.leader_serves and cfg.election_alg == 3
    assert cfg.metrics_provider_class == "org.apache.zookeeper.metrics.impl.DefaultMetricsProvider"
    assert cfg.warnings == [] and cfg.system_properties == {}


def test_default_config_equals_a_bare_server_config():
    assert default_config() == ServerConfig()


def test_load_config_without_a_file_still_applies_jvm_flags():
    cfg = load_config(None, {"SERVER_JVMFLAGS": "-Dzookeeper.snapCount=50"})
    assert cfg.snap_count == 50 and cfg.client_port == 2181 and cfg.data_dir == Path("zkpy-data")


def test_file_without_client_port_address_listens_on_every_interface(tmp_path):
    cfg = load(tmp_path)
    assert cfg.client_port_address == "0.0.0.0" and cfg.client_port == 2181
    assert cfg.source == tmp_path / "zoo.cfg"


def test_file_without_ticktime_gets_zookeepers_3000_ms(tmp_path):
    assert load(tmp_path).tick_time_ms == 3000


# ---------------------------------------------------------------------------------------------
# typed keys


@pytest.mark.parametrize(("line", "field", "expected"), [
    ("tickTime=2000", "tick_time_ms", 2000),
    ("clientPortAddress=127.0.0.1", "client_port_address", "127.0.0.1"),
    ("maxClientCnxns=0", "max_client_cnxns", 0),
    ("minSessionTimeout=1000", "min_session_timeout_ms", 1000),
    ("maxSessionTimeout=90000", "max_session_timeout_ms", 90000),
    ("clientPortListenBacklog=128", "client_port_listen_backlog", 128),
    ("localSessionsEnabled=TRUE", "local_sessions_enabled", True),
    ("localSessionsUpgradingEnabled=true", "local_sessions_upgrading_enabled", True),
    ("initLimit=10", "init_limit", 10),
    ("syncLimit=5", "sync_limit", 5),
    ("connectToLearnerMasterLimit=7", "connect_to_learner_master_limit", 7),
    ("electionAlg=3", "election_alg", 3),
    ("quorumListenOnAllIPs=true", "quorum_listen_on_all_ips", True),
    ("syncEnabled=false", "sync_enabled", False),
    ("autopurge.snapRetainCount=5", "autopurge_snap_retain_count", 5),
    ("autopurge.purgeInterval=24", "autopurge_purge_interval_hours", 24),
    ("reconfigEnabled=true", "reconfig_enabled", True),
    ("sslQuorum=true", "ssl_quorum", True),
    ("portUnification=true", "port_unification", True),
    ("observerMasterPort=2191", "observer_master_port", 2191),
    ("secureClientPort=2281", "secure_client_port", 2281),
    ("quorum.cnxn.threads.size=30", "quorum_cnxn_threads_size", 30),
    ("jvm.pause.monitor=true", "jvm_pause_monitor_enabled", True),
    ("jvm.pause.warn-threshold.ms=20000", "jvm_pause_warn_threshold_ms", 20000),
    ("multiAddress.reachabilityCheckTimeoutMs=500", "multi_address_reachability_check_timeout_ms", 500),
    ("snapCount=5000", "snap_count", 5000),
    ("snapSizeLimitInKb=1024", "snap_size_limit_kb", 1024),
    ("txnLogSizeLimitInKb=2048", "txn_log_size_limit_kb", 2048),
    ("preAllocSize=1024", "pre_alloc_size_kb", 1024),
    ("forceSync=no", "force_sync", False),
    ("fsync.warningthresholdms=50", "fsync_warning_threshold_ms", 50),
    ("globalOutstandingLimit=2000", "global_outstanding_limit", 2000),
    ("maxCnxns=100", "max_cnxns", 100),
    ("extendedTypesEnabled=true", "extended_types_enabled", True),
    ("emulate353TTLNodes=true", "emulate_353_ttl_nodes", True),
    ("closeSessionTxn.enabled=false", "close_session_txn_enabled", False),
    ("digest.enabled=false", "digest_enabled", False),
    ("skipACL=yes", "skip_acl", True),
    ("enforceQuota=true", "enforce_quota", True),
    ("enableEagerACLCheck=true", "enable_eager_acl_check", True),
    ("leaderServes=no", "leader_serves", False),
    ("DigestAuthenticationProvider.superDigest=super:D/InIHSb7yEEbrWz8b9l71RjZJU=", "super_digest",
     "super:D/InIHSb7yEEbrWz8b9l71RjZJU="),
    ("DigestAuthenticationProvider.enabled=false", "digest_auth_enabled", False),
    ("DigestAuthenticationProvider.digestAlg=SHA-256", "digest_auth_algorithm", "SHA-256"),
    ("admin.enableServer=false", "admin_enable_server", False),
    ("admin.serverAddress=127.0.0.1", "admin_server_address", "127.0.0.1"),
    ("admin.serverPort=9090", "admin_server_port", 9090),
    ("admin.idleTimeout=1000", "admin_idle_timeout_ms", 1000),
    ("admin.commandURL=/cmds", "admin_command_url", "/cmds"),
    ("admin.portUnification=true", "admin_port_unification", True),
    ("metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider",
     "metrics_provider_class", "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider"),
    ("maxBatchSize=10", "max_batch_size", 10),
    ("flushDelay=30", "flush_delay_ms", 30),
    ("request_throttle_max_requests=100", "request_throttle_max_requests", 100),
    ("request_throttle_stall_time=50", "request_throttle_stall_time_ms", 50),
    ("throttled_op_wait_time=20", "throttled_op_wait_time_ms", 20),
    ("largeRequestMaxBytes=1000", "large_request_max_bytes", 1000),
    ("largeRequestThreshold=100", "large_request_threshold_bytes", 100),
    ("maxResponseCacheSize=0", "max_response_cache_size", 0),
    ("commitLogCount=1000", "commit_log_count", 1000),
    ("snapshotSizeFactor=0.5", "snapshot_size_factor", 0.5),
    ("snapshot.compression.method=GZ", "snapshot_compression_method", "gz"),
    ("snapshot.trust.empty=true", "snapshot_trust_empty", True),
    ("datadir.autocreate=false", "datadir_autocreate", False),
    ("db.autocreate=false", "db_autocreate", False),
    ("audit.enable=true", "audit_enabled", True),
    ("clientTcpKeepAlive=true", "client_tcp_keep_alive", True),
    ("enforce.auth.enabled=true", "enforce_auth_enabled", True),
    ("enforce.auth.schemes=sasl, digest", "enforce_auth_schemes", ("sasl", "digest")),
])
def test_typed_key_sets_its_field(tmp_path, line, field, expected):
    cfg = load(tmp_path, line + "\n")
    assert getattr(cfg, field) == expected
    assert cfg.warnings == []


@pytest.mark.parametrize(("line", "expected"), [
    ("tickTime=abc", "'abc' is not an integer"),
    ("tickTime=0x10", "'0x10' is not an integer"),  # parseInt: decimal only
    ("tickTime=99999999999", "is not an integer"),  # beyond Java's int
    ("maxClientCnxns=1.5", "'1.5' is not an integer"),
    ("standaloneEnabled=yes", "'yes' is not 'true' or 'false'"),
    ("snapCount=abc", "'abc' is not an integer"),  # ZooKeeper would silently use 100000
    ("preAllocSize=64M", "'64M' is not an integer"),
    ("forceSync=No", "'No' is not 'yes' or 'no'"),  # ZooKeeper compares with equals("no")
    ("forceSync=false", "'false' is not 'yes' or 'no'"),
    ("skipACL=true", "'true' is not 'yes' or 'no'"),
    ("leaderServes=false", "'false' is not 'yes' or 'no'"),
    ("admin.enableServer=FALSE", "'FALSE' is not 'true' or 'false' (lower case"),
    ("admin.serverPort=70000", "is not a port number"),
    ("extendedTypesEnabled=yes", "'yes' is not 'true' or 'false'"),
    ("snapshotSizeFactor=half", "'half' is not a number"),
    ("snapshot.compression.method=zip", "'zip' is not '', 'gz' or 'snappy'"),
    ("clientPortListenBacklog=", "'' is not an integer"),
])
def test_invalid_value_is_refused_naming_file_line_and_key(tmp_path, line, expected):
    key = line.partition("=")[0]
    error = refused(tmp_path, minimal(tmp_path) + "# a comment\n" + line + "\n")
    assert (error.key, error.line, error.path) == (key, 4, tmp_path / "zoo.cfg")
    assert expected in str(error)
    assert str(error).startswith(f"{tmp_path / 'zoo.cfg'}:4: {key}: ")


def test_error_message_has_the_compiler_style_form(tmp_path):
    error = refused(tmp_path, "\n" * 6 + "tickTime=abc\n")
    assert str(error) == f"{tmp_path / 'zoo.cfg'}:7: tickTime: 'abc' is not an integer"
    assert isinstance(error, ValueError)


def test_out_of_range_client_port_is_refused(tmp_path):
    error = refused(tmp_path, f"dataDir={tmp_path}\nclientPort=65536\n")
    assert error.key == "clientPort" and "port number" in str(error)


def test_integer_getinteger_properties_accept_hex_hash_and_octal_like_java(tmp_path):
    cfg = load(tmp_path, "snapCount=0x400\nglobalOutstandingLimit=#10\nmaxBatchSize=010\n")
    assert (cfg.snap_count, cfg.global_outstanding_limit, cfg.max_batch_size) == (1024, 16, 8)


def test_octal_reading_of_a_leading_zero_is_warned_about(tmp_path):
    cfg = load(tmp_path, "maxBatchSize=010\n")
    assert any("maxBatchSize" in w and "octal" in w and ": 8" in w for w in cfg.warnings)


def test_booleans_are_case_insensitive_where_java_compares_ignoring_case(tmp_path):
    assert load(tmp_path, "extendedTypesEnabled=TRUE\n").extended_types_enabled


def test_typed_property_reads_any_known_property_with_its_default(tmp_path):
    cfg = load(tmp_path, "connection_throttle_tokens=0x10\n")
    assert cfg.typed_property("zookeeper.connection_throttle_tokens") == 16
    assert cfg.typed_property("zookeeper.connection_throttle_fill_count") == 1
    assert cfg.typed_property("zookeeper.unheard.of") is None


def test_malformed_value_of_a_known_but_unused_property_is_refused(tmp_path):
    error = refused(tmp_path, minimal(tmp_path) + "nio.numWorkerThreads=many\n")
    assert error.key == "nio.numWorkerThreads" and error.line == 3


# ---------------------------------------------------------------------------------------------
# derived values and validation


def test_session_timeouts_default_to_2_and_20_ticks(tmp_path):
    cfg = load(tmp_path, "tickTime=1500\n")
    assert (cfg.min_session_timeout_ms, cfg.max_session_timeout_ms) == (3000, 30000)


def test_explicit_minus_one_session_timeout_means_the_default(tmp_path):
    cfg = load(tmp_path, "tickTime=1000\nminSessionTimeout=-1\nmaxSessionTimeout=-1\n")
    assert (cfg.min_session_timeout_ms, cfg.max_session_timeout_ms) == (2000, 20000)


def test_min_session_timeout_above_max_is_refused(tmp_path):
    error = refused(tmp_path, minimal(tmp_path) + "minSessionTimeout=50000\nmaxSessionTimeout=4000\n")
    assert (error.key, error.line) == ("minSessionTimeout", 3)
    assert "must not be larger than maxSessionTimeout" in str(error)


def test_min_session_timeout_above_the_derived_max_is_refused(tmp_path):
    error = refused(tmp_path, minimal(tmp_path) + "tickTime=1000\nminSessionTimeout=30000\n")
    assert error.key == "minSessionTimeout" and "(20000 ms)" in str(error)


def test_data_log_dir_defaults_to_data_dir(tmp_path):
    cfg = load(tmp_path)
    assert cfg.data_log_dir == cfg.data_dir == tmp_path / "data"


def test_data_log_dir_is_read(tmp_path):
    assert load(tmp_path, f"dataLogDir={tmp_path / 'log'}\n").data_log_dir == tmp_path / "log"


def test_missing_data_dir_is_refused(tmp_path):
    error = refused(tmp_path, "tickTime=2000\nclientPort=2181\n")
    assert error.key == "dataDir" and "dataDir is not set" in str(error) and error.path == tmp_path / "zoo.cfg"


def test_relative_data_dir_is_kept_and_warned_about(tmp_path):
    cfg = load_config(write(tmp_path, "dataDir=data\nclientPort=2181\n"), {})
    assert cfg.data_dir == Path("data")
    assert any("dataDir" in w and "relative" in w for w in cfg.warnings)


def test_dot_slash_data_dir_is_not_warned_about(tmp_path):
    cfg = load_config(write(tmp_path, "dataDir=./data\nclientPort=2181\n"), {})
    assert cfg.warnings == []


def test_missing_client_port_is_refused(tmp_path):
    error = refused(tmp_path, f"dataDir={tmp_path}\n")
    assert error.key == "clientPort" and "clientPort is not set" in str(error)


def test_client_port_address_without_client_port_is_refused(tmp_path):
    error = refused(tmp_path, f"dataDir={tmp_path}\nclientPortAddress=127.0.0.1\n")
    assert (error.key, error.line) == ("clientPortAddress", 2) and "clientPort is not set" in str(error)


def test_secure_client_port_alone_is_refused_because_zkpy_serves_plaintext(tmp_path):
    error = refused(tmp_path, f"dataDir={tmp_path}\nsecureClientPort=2281\n")
    assert error.key == "clientPort" and "secureClientPort" in str(error)


def test_secure_client_port_registers_the_x509_auth_provider(tmp_path):
    cfg = load(tmp_path, "secureClientPort=2281\n")
    assert cfg.auth_providers["x509"] == "org.apache.zookeeper.server.auth.X509AuthenticationProvider"
    assert cfg.secure_client_port_address == "0.0.0.0"


def test_zero_tick_time_is_refused(tmp_path):
    error = refused(tmp_path, minimal(tmp_path) + "tickTime=0\n")
    assert error.key == "tickTime" and "not set" in str(error)


def test_negative_tick_time_is_refused(tmp_path):
    assert refused(tmp_path, minimal(tmp_path) + "tickTime=-5\n").key == "tickTime"


def test_snap_retain_count_below_three_becomes_three_with_a_warning(tmp_path):
    cfg = load(tmp_path, "autopurge.snapRetainCount=1\n")
    assert cfg.autopurge_snap_retain_count == 3
    assert any("autopurge.snapRetainCount" in w for w in cfg.warnings)


def test_snap_count_below_two_becomes_two_with_a_warning(tmp_path):
    cfg = load(tmp_path, "snapCount=1\n")
    assert cfg.snap_count == 2 and any("snapCount" in w for w in cfg.warnings)


def test_negative_max_cnxns_becomes_unlimited_with_a_warning(tmp_path):
    cfg = load(tmp_path, "maxCnxns=-3\n")
    assert cfg.max_cnxns == 0 and any("maxCnxns" in w for w in cfg.warnings)


def test_commit_log_count_below_500_becomes_500(tmp_path):
    assert load(tmp_path, "commitLogCount=10\n").commit_log_count == 500


def test_snapshot_size_factor_above_one_falls_back_to_the_default(tmp_path):
    assert load(tmp_path, "snapshotSizeFactor=2\n").snapshot_size_factor == 0.33


def test_election_algorithm_other_than_3_is_refused(tmp_path):
    error = refused(tmp_path, minimal(tmp_path) + "electionAlg=1\n")
    assert error.key == "electionAlg" and "only 3" in str(error)


def test_unknown_peer_type_is_refused(tmp_path):
    error = refused(tmp_path, minimal(tmp_path) + "peerType=witness\n")
    assert error.key == "peerType" and "'witness'" in str(error)


def test_peer_type_not_matching_the_server_list_follows_the_list(tmp_path):
    cfg = load(tmp_path, "peerType=Observer\n")
    assert cfg.peer_type == "participant"
    assert any("peerType" in w for w in cfg.warnings)


def test_unknown_metrics_provider_class_is_refused(tmp_path):
    error = refused(tmp_path, minimal(tmp_path) + "metricsProvider.className=com.example.Metrics\n")
    assert error.key == "metricsProvider.className" and "not found" in str(error)


def test_prometheus_provider_settings_are_read(tmp_path):
    cfg = load(tmp_path, "metricsProvider.className=org.apache.zookeeper.metrics.prometheus."
                         "PrometheusMetricsProvider\nmetricsProvider.httpPort=7001\n"
                         "metricsProvider.httpHost=127.0.0.1\nmetricsProvider.exportJvmInfo=false\n")
    assert (cfg.metrics_http_host, cfg.metrics_http_port, cfg.metrics_export_jvm_info) == ("127.0.0.1", 7001, False)
    assert cfg.metrics_provider_config == {"httpPort": "7001", "httpHost": "127.0.0.1", "exportJvmInfo": "false"}


def test_metrics_provider_settings_are_not_validated_for_the_default_provider(tmp_path):
    cfg = load(tmp_path, "metricsProvider.httpPort=lots\n")
    assert cfg.metrics_http_port == 7000 and cfg.metrics_provider_config == {"httpPort": "lots"}


def test_quorum_sasl_required_without_sasl_enabled_is_refused(tmp_path):
    error = refused(tmp_path, minimal(tmp_path) + "quorum.auth.serverRequireSasl=true\n")
    assert error.key == "quorum.auth.serverRequireSasl" and "quorum.auth.enableSasl" in str(error)


def test_max_write_queue_poll_time_defaults_to_a_third_of_flush_delay(tmp_path):
    assert load(tmp_path, "flushDelay=30\n").max_write_queue_poll_time_ms == 10


def test_jute_extra_size_defaults_to_jute_max_buffer(tmp_path):
    cfg = load(tmp_path, env={"SERVER_JVMFLAGS": "-Djute.maxbuffer=4096"})
    assert cfg.jute_max_buffer_extra_size == 4096


def test_session_require_client_sasl_auth_enforces_the_sasl_scheme(tmp_path):
    cfg = load(tmp_path, "sessionRequireClientSASLAuth=true\n")
    assert cfg.enforce_auth_enabled and cfg.enforce_auth_schemes == ("sasl",)


def test_missing_file_is_refused_naming_it(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.cfg", {})
    assert info.value.path == tmp_path / "nope.cfg"


# ---------------------------------------------------------------------------------------------
# four-letter words


def test_four_letter_words_default_to_srvr_only(tmp_path):
    assert load(tmp_path).four_letter_words == frozenset({"srvr"})


def test_four_letter_word_list_is_comma_separated_and_trimmed(tmp_path):
    cfg = load(tmp_path, "4lw.commands.whitelist=stat, ruok ,conf,,isro\n")
    assert cfg.four_letter_words == frozenset({"stat", "ruok", "conf", "isro", "srvr"})


def test_star_enables_every_four_letter_word(tmp_path):
    assert load(tmp_path, "4lw.commands.whitelist=ruok, *\n").four_letter_words == FOUR_LETTER_WORDS


def test_unknown_four_letter_word_is_dropped_with_a_warning(tmp_path):
    cfg = load(tmp_path, "4lw.commands.whitelist=ruok,boom\n")
    assert cfg.four_letter_words == frozenset({"ruok", "srvr"})
    assert any("'boom'" in w for w in cfg.warnings)


def test_read_only_mode_enables_isro(tmp_path):
    cfg = load(tmp_path, env={"SERVER_JVMFLAGS": "-Dreadonlymode.enabled=true"})
    assert cfg.read_only_mode_enabled and "isro" in cfg.four_letter_words


def test_read_only_mode_in_capitals_does_not_enable_isro_as_in_zookeeper(tmp_path):
    # QuorumPeer uses Boolean.getBoolean, FourLetterCommands compares with equals("true").
    cfg = load(tmp_path, env={"SERVER_JVMFLAGS": "-Dreadonlymode.enabled=TRUE"})
    assert cfg.read_only_mode_enabled and "isro" not in cfg.four_letter_words


# ---------------------------------------------------------------------------------------------
# java.util.Properties syntax


@pytest.mark.parametrize("line", ["k=v", "k:v", "k v", "k\tv", "k = v", "k : v", "k   v", "  k=v", "\tk:v"])
def test_key_and_value_separators(line):
    assert properties(line) == {"k": "v"}


def test_only_the_first_separator_splits():
    assert properties("k=a=b:c") == {"k": "a=b:c"}


def test_blank_then_separator_counts_as_one_separator():
    assert properties("k =  =v") == {"k": "=v"}


@pytest.mark.parametrize("line", ["# comment", "! comment", "   # indented", "\t! indented"])
def test_comment_lines_are_ignored(line):
    assert properties(f"{line}\nk=v") == {"k": "v"}


def test_hash_after_a_value_is_part_of_the_value():
    assert properties("k=v # not a comment") == {"k": "v # not a comment"}


def test_backslash_continues_the_line_dropping_the_next_lines_indent():
    assert properties("k=one,\\\n    two,\\\n\tthree") == {"k": "one,two,three"}


def test_even_backslashes_do_not_continue():
    assert properties("k=a\\\\\nj=b") == {"k": "a\\", "j": "b"}


def test_empty_line_after_a_continuation_ends_the_entry():
    assert properties("k=a\\\n\nj=b") == {"k": "a", "j": "b"}


def test_comment_marker_on_a_continuation_line_is_text():
    assert properties("k=a\\\n#b") == {"k": "a#b"}


def test_continuation_at_end_of_file_drops_the_backslash():
    assert properties("k=a\\") == {"k": "a"}


@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r"])
def test_all_line_endings_end_a_line(ending):
    assert properties(f"a=1{ending}b=2{ending}c=3\\{ending}  4") == {"a": "1", "b": "2", "c": "34"}


def test_escapes_are_decoded():
    assert properties(r"k\ ey\:x\=y=tab\there\nnew\u0041\u00e9\q") == {"k ey:x=y": "tab\there\nnewAéq"}


def test_escaped_surrogate_pair_is_one_character():
    assert properties(r"k=\ud83d\ude00") == {"k": "\U0001F600"}


def test_malformed_unicode_escape_is_refused_with_its_line(tmp_path):
    error = refused(tmp_path, "a=1\n\nbad=\\u12x4\n")
    assert error.line == 3 and error.key == "bad" and "\\uxxxx" in str(error)


def test_key_without_value_has_an_empty_value():
    assert properties("lonely\nalso=") == {"lonely": "", "also": ""}


def test_leading_value_blanks_go_and_trailing_ones_stay_until_zookeeper_trims():
    assert properties("k=  v  ") == {"k": "v  "}
    assert java_trim("\t v \x00\x1f") == "v"


def test_line_numbers_count_physical_lines(tmp_path):
    entries = parse_properties("# c\n\na=1\\\n  2\nb=3\r\nc=4")
    assert [(e.key, e.line) for e in entries] == [("a", 3), ("b", 5), ("c", 6)]


def test_zookeeper_trims_keys_and_values(tmp_path):
    cfg = load_config(write(tmp_path, f"dataDir={tmp_path}  \nclientPort = 2181\t\ntickTime=\\t2000\n"), {})
    assert cfg.data_dir == tmp_path and cfg.client_port == 2181 and cfg.tick_time_ms == 2000


def test_duplicate_key_last_one_wins_with_a_warning(tmp_path):
    cfg = load(tmp_path, "tickTime=1000\ntickTime=2000\n")
    assert cfg.tick_time_ms == 2000
    assert any(":4: tickTime:" in w and "line 3" in w for w in cfg.warnings)


def test_utf8_file_is_read_as_utf8(tmp_path):
    path = tmp_path / "zoo.cfg"
    path.write_bytes(f"dataDir={tmp_path}/dätä\nclientPort=2181\n".encode())
    assert load_config(path, {}).data_dir == tmp_path / "dätä"


def test_non_utf8_file_is_read_as_latin1_like_java(tmp_path):
    path = tmp_path / "zoo.cfg"
    path.write_bytes(f"dataDir={tmp_path}/d\xe4ta\nclientPort=2181\n".encode("latin-1"))
    assert load_config(path, {}).data_dir == tmp_path / "däta"


def _store_escape(text: str, *, key: bool) -> str:
    """Escape like Properties.store, so that load gives ``text`` back."""
    out = []
    for i, ch in enumerate(text):
        if ch in "\\=:#!":
            out.append("\\" + ch)
        elif ch == " ":
            out.append("\\ " if key or i == 0 else " ")
        elif ch in "\t\n\r\f":
            out.append({"\t": "\\t", "\n": "\\n", "\r": "\\r", "\f": "\\f"}[ch])
        elif " " < ch < "\x7f":
            out.append(ch)
        else:
            units = ch.encode("utf-16-be")
            out.extend(f"\\u{units[j:j + 2].hex()}" for j in range(0, len(units), 2))
    return "".join(out)


_texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)


@settings(max_examples=300, deadline=None)
@given(pairs=st.dictionaries(_texts.filter(bool), _texts, max_size=8),
       separator=st.sampled_from(["=", ":", " ", "\t", " = ", "\t: "]),
       indent=st.sampled_from(["", " ", "\t\f "]),
       ending=st.sampled_from(["\n", "\r\n", "\r"]))
def test_properties_round_trip(pairs, separator, indent, ending):
    text = "".join(f"{indent}{_store_escape(k, key=True)}{separator}{_store_escape(v, key=False)}{ending}"
                   for k, v in pairs.items())
    assert properties(text) == pairs


@settings(max_examples=300, deadline=None)
@given(st.text(st.sampled_from(["a", "=", ":", " ", "\t", "\\", "\n", "\r", "#", "!", "u", "0", "é"]),
               max_size=40))
def test_properties_parser_either_parses_or_raises_config_error(text):
    try:
        entries = parse_properties(text)
    except ConfigError as e:
        assert e.line is not None
    else:
        assert all(e.line >= 1 for e in entries)


_JAVA_PROPERTIES_DUMP = """
import java.io.*; import java.util.*;
public class PropertiesDump {
  public static void main(String[] files) throws Exception {
    for (String f : files) {
      Properties p = new Properties();
      try (FileInputStream in = new FileInputStream(f)) { p.load(in); }
      catch (IllegalArgumentException e) { System.out.println("ERR"); continue; }
      StringBuilder b = new StringBuilder("OK");
      for (String k : new TreeSet<>(p.stringPropertyNames()))
        b.append(' ').append(hex(k)).append('=').append(hex(p.getProperty(k)));
      System.out.println(b);
    }
  }
  static String hex(String s) {
    StringBuilder b = new StringBuilder("_");
    for (char c : s.toCharArray()) b.append(String.format("%04x", (int) c));
    return b.toString();
  }
}
"""
_TRICKY_TOKENS = ["a", "b", "key", "=", ":", " ", "\t", "\f", "\\", "\\\\", "\n", "\r", "\r\n", "#", "!",
                  "\\u0041", "\\u00e9", "\\uD83D\\uDE00", "\\u12", "\\t", "\\n", "\\ ", "\\=", "x y", "\\\n",
                  "\\\r\n", "\\\r"]


def _java_can_run_source_files() -> bool:
    return shutil.which("java") is not None


@pytest.mark.skipif(not _java_can_run_source_files(), reason="needs a Java 11+ runtime (`java File.java`)")
def test_properties_parser_agrees_with_java_on_tricky_files(tmp_path):
    """Differential test against java.util.Properties itself, on seeded random token soups."""
    rng = random.Random(38)
    texts = ["".join(rng.choice(_TRICKY_TOKENS) for _ in range(rng.randint(0, 25))) for _ in range(300)]
    files = []
    for i, text in enumerate(texts):
        files.append(tmp_path / f"{i}.properties")
        files[-1].write_bytes(text.encode("ascii"))
    source = tmp_path / "PropertiesDump.java"
    source.write_text(_JAVA_PROPERTIES_DUMP)
    run = subprocess.run(["java", str(source), *map(str, files)], capture_output=True, text=True, timeout=120)
    if run.returncode != 0 and "javac" in run.stderr + run.stdout:
        pytest.skip("this Java runtime cannot compile source files")
    assert run.returncode == 0, run.stderr

    def decode(hex_text: str) -> str:
        units = bytes.fromhex(hex_text[1:])
        return units.decode("utf-16-be", "surrogatepass").encode("utf-16-le", "surrogatepass") \
            .decode("utf-16-le", "replace")

    for text, line in zip(texts, run.stdout.splitlines(), strict=True):
        if line == "ERR":
            with pytest.raises(ConfigError):
                parse_properties(text)
            continue
        expected = dict(item.split("=") for item in line.split(" ")[1:])
        assert properties(text) == {decode(k): decode(v) for k, v in expected.items()}, repr(text)


# ---------------------------------------------------------------------------------------------
# unknown keys and system properties


def test_unknown_key_becomes_a_zookeeper_system_property_with_a_warning(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="zkpy.server.config"):
        cfg = load(tmp_path, "fooBar=1\n")
    assert cfg.system_properties["zookeeper.fooBar"] == "1"
    assert any(":3: fooBar: unknown key" in w and "zookeeper.fooBar" in w for w in cfg.warnings)
    assert any("fooBar" in r.getMessage() for r in caplog.records)


def test_misspelt_key_gets_a_suggestion(tmp_path):
    cfg = load(tmp_path, "ticktime=2000\n")
    assert cfg.tick_time_ms == 3000 and any("did you mean tickTime?" in w for w in cfg.warnings)


def test_keys_zookeeper_reads_are_not_warned_about(tmp_path):
    cfg = load(tmp_path, "snapCount=10\nadmin.enableServer=false\nauthProvider.1=org.example.Auth\n"
                         "ssl.keyStore.location=/k\nfastleader.minNotificationInterval=100\n")
    assert cfg.warnings == []


def test_jute_maxbuffer_in_zoo_cfg_is_honoured_with_a_warning(tmp_path):
    # Apache ZooKeeper 3.8.0 turns it into zookeeper.jute.maxbuffer, which nothing reads; zkpy
    # honours it on purpose and warns that Apache would not.
    cfg = load(tmp_path, "jute.maxbuffer=1000\n")
    assert cfg.jute_max_buffer == 1000
    assert cfg.system_properties["zookeeper.jute.maxbuffer"] == "1000"
    assert any("-Djute.maxbuffer" in w and "SERVER_JVMFLAGS" in w for w in cfg.warnings)


def test_readonlymode_in_zoo_cfg_is_honoured_with_a_warning(tmp_path):
    cfg = load(tmp_path, "readonlymode.enabled=true\n")
    assert cfg.read_only_mode_enabled and "isro" in cfg.four_letter_words
    assert any("-Dreadonlymode.enabled" in w for w in cfg.warnings)


def test_container_check_interval_in_zoo_cfg_is_honoured(tmp_path):
    cfg = load(tmp_path, "znode.container.checkIntervalMs=100\n")
    assert cfg.container_check_interval_ms == 100


def test_zookeeper_prefix_in_zoo_cfg_is_doubled_and_explained(tmp_path):
    cfg = load(tmp_path, "zookeeper.snapCount=10\n")
    assert cfg.snap_count == 100_000 and "zookeeper.zookeeper.snapCount" in cfg.system_properties
    assert any("write snapCount" in w for w in cfg.warnings)


def test_documentation_name_that_zookeeper_does_not_read_points_to_the_real_one(tmp_path):
    cfg = load(tmp_path, "connectionMaxTokens=100\n")
    assert any("connection_throttle_tokens" in w for w in cfg.warnings)


def test_system_properties_hold_every_effective_property(tmp_path):
    cfg = load(tmp_path, "snapCount=10\nserver.1=localhost:2888:3888\n",
               env={"SERVER_JVMFLAGS": "-Xmx1g -Dfoo.bar=baz -Dzookeeper.snapCount=7"})
    assert cfg.system_properties == {"foo.bar": "baz", "zookeeper.snapCount": "10",
                                     "zookeeper.server.1": "localhost:2888:3888"}


def test_auth_providers_are_collected_from_both_sources(tmp_path):
    cfg = load(tmp_path, "authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider\n",
               env={"JVMFLAGS": "-Dzookeeper.authProvider.ip2=org.example.Ip"})
    assert cfg.auth_providers == {"1": "org.apache.zookeeper.server.auth.SASLAuthenticationProvider",
                                  "ip2": "org.example.Ip"}


def test_server_cnxn_factory_is_accepted_and_ignored(tmp_path):
    cfg = load(tmp_path, "serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory\n")
    assert cfg.warnings == []


# ---------------------------------------------------------------------------------------------
# JVM flags and precedence


def test_jvm_flags_are_the_d_words():
    assert parse_jvm_flags("-Xmx1g -Da=1  -Db=x=y\t-Dc\n-XX:+UseG1GC -D -D=v") == {"a": "1", "b": "x=y", "c": ""}


def test_jvm_flags_keep_quotes_as_zkserver_sh_does():
    assert parse_jvm_flags('-Dk="a b"') == {"k": '"a'}


def test_later_jvm_flag_wins():
    assert parse_jvm_flags("-Dk=1 -Dk=2") == {"k": "2"}


def test_server_jvmflags_set_properties(tmp_path):
    cfg = load(tmp_path, env={"SERVER_JVMFLAGS": "-Djute.maxbuffer=2048 -Dznode.container.checkIntervalMs=5 "
                                                 "-Dzookeeper.DigestAuthenticationProvider.superDigest=super:x"})
    assert (cfg.jute_max_buffer, cfg.container_check_interval_ms, cfg.super_digest) == (2048, 5, "super:x")


def test_jvmflags_come_after_server_jvmflags_and_win(tmp_path):
    cfg = load(tmp_path, env={"SERVER_JVMFLAGS": "-Dzookeeper.snapCount=10", "JVMFLAGS": "-Dzookeeper.snapCount=20"})
    assert cfg.snap_count == 20


def test_zoo_cfg_key_overwrites_the_jvm_flag_it_maps_to(tmp_path):
    cfg = load(tmp_path, "snapCount=30\n4lw.commands.whitelist=conf\n",
               env={"SERVER_JVMFLAGS": "-Dzookeeper.snapCount=10 -Dzookeeper.4lw.commands.whitelist=envi"})
    assert cfg.snap_count == 30 and cfg.four_letter_words == frozenset({"conf", "srvr"})


def test_jvm_flag_for_a_key_quorumpeerconfig_reads_itself_is_ignored_with_a_warning(tmp_path):
    cfg = load(tmp_path, env={"SERVER_JVMFLAGS": "-Dzookeeper.tickTime=10"})
    assert cfg.tick_time_ms == 3000
    assert any(w.startswith("SERVER_JVMFLAGS: zookeeper.tickTime:") and "tickTime in zoo.cfg" in w
               for w in cfg.warnings)


def test_non_zookeeper_jvm_flags_are_not_warned_about(tmp_path):
    assert load(tmp_path, env={"JVMFLAGS": "-Djava.net.preferIPv4Stack=true"}).warnings == []


def test_invalid_jvm_flag_value_names_the_variable_and_property(tmp_path):
    error = refused(tmp_path, minimal(tmp_path), env={"JVMFLAGS": "-Dzookeeper.forceSync=off"})
    assert str(error) == ("JVMFLAGS: zookeeper.forceSync: 'off' is not 'yes' or 'no' "
                          "(lower case, as ZooKeeper compares it)")
    assert (error.key, error.origin, error.line) == ("zookeeper.forceSync", "JVMFLAGS", None)


def test_invalid_jvm_flag_overridden_by_zoo_cfg_is_never_read(tmp_path):
    cfg = load(tmp_path, "forceSync=no\n", env={"JVMFLAGS": "-Dzookeeper.forceSync=off"})
    assert cfg.force_sync is False


def test_datadir_autocreate_disable_variable_turns_autocreate_off(tmp_path):
    assert not load(tmp_path, env={"ZOO_DATADIR_AUTOCREATE_DISABLE": "1"}).datadir_autocreate


def test_jvm_flags_can_turn_autocreate_back_on(tmp_path):
    cfg = load(tmp_path, env={"ZOO_DATADIR_AUTOCREATE_DISABLE": "1",
                              "SERVER_JVMFLAGS": "-Dzookeeper.datadir.autocreate=true"})
    assert cfg.datadir_autocreate


def test_observer_sync_property_overrides_sync_enabled(tmp_path):
    cfg = load(tmp_path, "syncEnabled=true\n", env={"SERVER_JVMFLAGS": "-Dzookeeper.observer.syncEnabled=false"})
    assert cfg.sync_enabled is False


# ---------------------------------------------------------------------------------------------
# server.N lines, myid, standalone versus ensemble


def servers_cfg(tmp_path: Path, *lines: str, my_id: str | None = None, limits: bool = True) -> Path:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    if my_id is not None:
        (data / "myid").write_text(my_id)
    head = f"dataDir={data}\nclientPort=2181\n" + ("initLimit=5\nsyncLimit=2\n" if limits else "")
    return write(tmp_path, head + "".join(line + "\n" for line in lines))


THREE = ("server.1=zk1:2888:3888", "server.2=zk2:2888:3888", "server.3=zk3:2888:3888")


def test_server_line_full_form_is_parsed(tmp_path):
    cfg = load_config(servers_cfg(tmp_path, "server.1=zk1:2888:3888:participant;10.0.0.1:2181",
                                  "server.2=zk2:2889:3889:observer;2182", *THREE[2:], my_id="1"), {})
    assert cfg.servers[1] == QuorumServerSpec(1, (PeerAddress("zk1", 2888, 3888),), "participant", "10.0.0.1", 2181)
    assert cfg.servers[2] == QuorumServerSpec(2, (PeerAddress("zk2", 2889, 3889),), "observer", "0.0.0.0", 2182)
    assert cfg.servers[3].client_port is None and cfg.servers[3].peer_type == "participant"


def test_server_line_with_ipv6_addresses(tmp_path):
    cfg = load_config(servers_cfg(tmp_path, "server.1=[::1]:2888:3888;[::1]:2181", limits=False), {})
    assert cfg.servers[1].addresses == (PeerAddress("::1", 2888, 3888),)
    assert (cfg.servers[1].client_host, str(cfg.servers[1])) == ("::1", "[::1]:2888:3888:participant;[::1]:2181")


def test_server_type_is_case_insensitive_and_trimmed(tmp_path):
    cfg = load_config(servers_cfg(tmp_path, "server.1=zk1:2888:3888", "server.2=zk2:2888:3888",
                                  "server.9=zk9:2888:3888: Observer", my_id="1"), {})
    assert cfg.servers[9].peer_type == "observer"


@pytest.mark.parametrize(("value", "expected"), [
    ("zk1:2888", "expected host:quorumPort:electionPort"),
    ("zk1:2888:3888:participant:x", "expected host:quorumPort:electionPort"),
    ("zk1:28x8:3888", "quorum port '28x8' is not a port number"),
    ("zk1:2888:70000", "election port '70000' is not a port number"),
    ("zk1:2888:2888", "must be different"),
    ("zk1:2888:3888 ", "trailing blanks"),  # ZooKeeper 3.8 refuses this too
    ("zk1:2888:3888;2181 ", "trailing blanks"),
    ("zk1:2888:3888:witness", "'witness' is not 'participant' or 'observer'"),
    ("zk1:2888:3888;a:b:c", "bad client address"),
    ("zk1:2888:3888;2181;2182", "more than one ';'"),
    ("zk1:2888:3888|zk1b:2889:3889", "-Dzookeeper.multiAddress.enabled=true"),
    ("[::1:2888:3888", "no matching ']'"),
])
def test_bad_server_line_is_refused_naming_it(tmp_path, value, expected):
    with pytest.raises(ConfigError) as info:
        load_config(servers_cfg(tmp_path, "server.7=" + value, limits=False), {})
    assert (info.value.key, info.value.line) == ("server.7", 3)
    assert expected in str(info.value)


def test_non_numeric_server_id_is_refused(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(servers_cfg(tmp_path, "server.one=zk1:2888:3888", limits=False), {})
    assert info.value.key == "server.one" and "'one' is not a number" in str(info.value)


def test_multiple_addresses_need_the_system_property_as_in_zookeeper(tmp_path):
    # Verified on Apache ZooKeeper 3.8.0: zoo.cfg multiAddress.enabled=true is not enough.
    path = servers_cfg(tmp_path, "multiAddress.enabled=true", "server.1=zk1:2888:3888|zk1b:2889:3889",
                       *THREE[1:], my_id="1")
    with pytest.raises(ConfigError):
        load_config(path, {})
    cfg = load_config(path, {"SERVER_JVMFLAGS": "-Dzookeeper.multiAddress.enabled=true"})
    assert cfg.servers[1].addresses == (PeerAddress("zk1", 2888, 3888), PeerAddress("zk1b", 2889, 3889))
    assert cfg.multi_address_enabled


def test_single_server_line_runs_standalone(tmp_path):
    cfg = load_config(servers_cfg(tmp_path, "server.1=localhost:2888:3888", limits=False), {})
    assert not cfg.is_quorum and list(cfg.servers) == [1] and cfg.my_id is None
    assert any("runs standalone" in w for w in cfg.warnings)


def test_single_server_line_with_matching_myid_runs_standalone_on_its_client_port(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "myid").write_text("1\n")
    cfg = load_config(write(tmp_path, f"dataDir={data}\nserver.1=127.0.0.1:2888:3888;127.0.0.1:2191\n"), {})
    assert not cfg.is_quorum and cfg.my_id == 1
    assert (cfg.client_port_address, cfg.client_port) == ("127.0.0.1", 2191)


def test_client_port_in_server_line_is_not_used_without_myid(tmp_path):
    # ZooKeeper 3.8 would start listening nowhere; we refuse and say why.
    error = refused(tmp_path, f"dataDir={tmp_path}\nserver.1=127.0.0.1:2888:3888;2191\n")
    assert error.key == "clientPort" and "myid" in str(error)


def test_static_client_port_conflicting_with_own_server_line_is_refused(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(servers_cfg(tmp_path, "clientPortAddress=127.0.0.1", "server.1=zk1:2888:3888;127.0.0.1:2999",
                                limits=False, my_id="1"), {})
    assert info.value.key == "clientPort" and "2999" in str(info.value)


def test_wildcard_static_client_port_agreeing_with_own_server_line_is_accepted(tmp_path):
    cfg = load_config(servers_cfg(tmp_path, "server.1=zk1:2888:3888;127.0.0.1:2181", limits=False, my_id="1"), {})
    assert (cfg.client_port_address, cfg.client_port) == ("127.0.0.1", 2181)


def test_three_servers_with_myid_make_an_ensemble(tmp_path):
    cfg = load_config(servers_cfg(tmp_path, *THREE, my_id="2\n"), {})
    assert cfg.is_quorum and cfg.my_id == 2 and sorted(cfg.servers) == [1, 2, 3]
    assert (cfg.init_limit, cfg.sync_limit) == (5, 2)


def test_two_participants_warn_that_no_failure_is_tolerated(tmp_path):
    cfg = load_config(servers_cfg(tmp_path, *THREE[:2], my_id="1"), {})
    assert cfg.is_quorum and any("at least 3" in w for w in cfg.warnings)


def test_four_participants_warn_about_the_even_count(tmp_path):
    cfg = load_config(servers_cfg(tmp_path, *THREE, "server.4=zk4:2888:3888", my_id="1"), {})
    assert any("odd number" in w for w in cfg.warnings)


def test_ensemble_without_myid_is_refused(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(servers_cfg(tmp_path, *THREE), {})
    assert info.value.key == "myid" and "myid file is missing" in str(info.value)


@pytest.mark.parametrize("key", ["initLimit", "syncLimit"])
def test_ensemble_without_limits_is_refused(tmp_path, key):
    other = {"initLimit": "syncLimit=2", "syncLimit": "initLimit=5"}[key]
    with pytest.raises(ConfigError) as info:
        load_config(servers_cfg(tmp_path, other, *THREE, limits=False, my_id="1"), {})
    assert info.value.key == key and f"{key} is not set" in str(info.value)


def test_myid_not_among_the_servers_is_refused(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(servers_cfg(tmp_path, *THREE, my_id="7"), {})
    assert (info.value.key, info.value.line, info.value.path) == ("myid", 1, tmp_path / "data" / "myid")


def test_myid_with_a_trailing_blank_is_refused_as_zookeeper_does(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(servers_cfg(tmp_path, *THREE, my_id="1 \n"), {})
    assert info.value.key == "myid" and "'1 ' is not a number" in str(info.value)


def test_observers_without_participants_are_refused(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(servers_cfg(tmp_path, "server.1=zk1:2888:3888:observer", limits=False), {})
    assert info.value.key == "server.1" and "without participants" in str(info.value)


def test_one_participant_with_observers_is_refused(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(servers_cfg(tmp_path, "server.1=zk1:2888:3888", "server.2=zk2:2888:3888:observer"), {})
    assert info.value.key == "server.2" and "without a quorum" in str(info.value)


def test_standalone_disabled_makes_one_server_an_ensemble(tmp_path):
    cfg = load_config(servers_cfg(tmp_path, "standaloneEnabled=false", "server.1=zk1:2888:3888", my_id="1"), {})
    assert cfg.is_quorum and not cfg.standalone_enabled


def test_standalone_disabled_without_servers_is_refused(tmp_path):
    error = refused(tmp_path, minimal(tmp_path) + "standaloneEnabled=false\n")
    assert error.key == "standaloneEnabled"


def test_observer_role_comes_from_the_server_list(tmp_path):
    cfg = load_config(servers_cfg(tmp_path, *THREE, "server.4=zk4:2888:3888:observer", my_id="4"), {})
    assert cfg.peer_type == "observer" and cfg.is_quorum


def test_extended_types_limit_server_ids_in_an_ensemble(tmp_path):
    path = servers_cfg(tmp_path, "extendedTypesEnabled=true", "server.1=zk1:2888:3888",
                       "server.2=zk2:2888:3888", "server.300=zk3:2888:3888", my_id="300")
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    assert info.value.key == "myid" and "254" in str(info.value)


def test_hierarchical_groups_and_weights(tmp_path):
    cfg = load_config(servers_cfg(tmp_path, *THREE, "group.1=1:2", "group.2=3", "weight.1=2", my_id="1"), {})
    assert cfg.groups == {1: (1, 2), 2: (3,)} and cfg.weights == {1: 2, 2: 1, 3: 1}


def test_participant_outside_every_group_is_refused(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(servers_cfg(tmp_path, *THREE, "group.1=1:2", my_id="1"), {})
    assert info.value.key == "server.3" and "not in a group" in str(info.value)


def test_server_in_two_groups_is_refused(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(servers_cfg(tmp_path, *THREE, "group.1=1:2", "group.2=2:3", my_id="1"), {})
    assert "more than one group" in str(info.value)


def test_dynamic_config_file_holds_the_servers(tmp_path):
    dynamic = write(tmp_path, "\n".join(THREE) + "\n", name="zoo.cfg.dynamic.100000000")
    cfg = load_config(servers_cfg(tmp_path, f"dynamicConfigFile={dynamic}", my_id="3"), {})
    assert sorted(cfg.servers) == [1, 2, 3] and cfg.config_version == 0x100000000
    assert cfg.dynamic_config_file == dynamic and cfg.is_quorum


def test_server_line_beside_a_dynamic_config_file_is_refused(tmp_path):
    dynamic = write(tmp_path, "\n".join(THREE) + "\n", name="zoo.cfg.dynamic")
    with pytest.raises(ConfigError) as info:
        load_config(servers_cfg(tmp_path, f"dynamicConfigFile={dynamic}", "server.4=zk4:2888:3888"), {})
    assert info.value.key == "server.4" and "dynamic config file" in str(info.value)


def test_other_keys_in_a_dynamic_config_file_are_refused(tmp_path):
    dynamic = write(tmp_path, "tickTime=10\n", name="zoo.cfg.dynamic")
    with pytest.raises(ConfigError) as info:
        load_config(servers_cfg(tmp_path, f"dynamicConfigFile={dynamic}"), {})
    assert (info.value.key, info.value.line, info.value.path) == ("tickTime", 1, dynamic)


# ---------------------------------------------------------------------------------------------
# the conf four-letter word


def test_describe_lists_conf_lines_in_zookeepers_order(tmp_path):
    cfg = load(tmp_path, "tickTime=2000\n")
    assert cfg.describe(data_dir_size=457, data_log_size=457) == [
        ("clientPort", "2181"), ("secureClientPort", "-1"),
        ("dataDir", str(tmp_path / "data" / "version-2")), ("dataDirSize", "457"),
        ("dataLogDir", str(tmp_path / "data" / "version-2")), ("dataLogSize", "457"),
        ("tickTime", "2000"), ("maxClientCnxns", "60"), ("minSessionTimeout", "4000"),
        ("maxSessionTimeout", "40000"), ("clientPortListenBacklog", "-1"), ("serverId", "0"),
    ]


def test_describe_adds_quorum_settings_for_an_ensemble_member(tmp_path):
    cfg = load_config(servers_cfg(tmp_path, "server.1=zk1:2888:3888;2181", "server.2=zk2:2889:3889",
                                  "server.3=zk3:2890:3890", my_id="1"), {})
    assert cfg.describe()[11:] == [("serverId", "1"), ("initLimit", "5"), ("syncLimit", "2"),
                                   ("electionAlg", "3"), ("electionPort", "3888"), ("quorumPort", "2888"),
                                   ("peerType", "0")]
    assert cfg.membership() == [("server.1", "zk1:2888:3888:participant;0.0.0.0:2181"),
                                ("server.2", "zk2:2889:3889:participant"),
                                ("server.3", "zk3:2890:3890:participant"), ("version", "0")]


def test_relative_data_dir_is_described_as_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(write(tmp_path, "dataDir=./d\nclientPort=2181\n"), {})
    assert dict(cfg.describe())["dataDir"] == str(tmp_path / "d" / "version-2")


# ---------------------------------------------------------------------------------------------
# against a real Apache ZooKeeper 3.8


@pytest.mark.apache
def test_describe_matches_apache_zookeepers_conf_output(tmp_path):
    srv = make_server("apache", tmp_path / "apache", extra_cfg={
        "tickTime": "1500", "maxClientCnxns": "17", "minSessionTimeout": "4000", "maxSessionTimeout": "33000",
        "clientPortListenBacklog": "64", "snapCount": "5000", "fooBar": "1"})
    srv.start(timeout_s=60)
    try:
        apache = four_letter(srv.host, srv.port, "conf")
    finally:
        srv.stop()
    apache_pairs = [tuple(line.split("=", 1)) for line in apache.splitlines() if line]
    sizes = dict(apache_pairs)
    cfg = load_config(srv.cfg_path, {"SERVER_JVMFLAGS": "-Dzookeeper.admin.enableServer=false"})
    assert cfg.describe(data_dir_size=int(sizes["dataDirSize"]),
                        data_log_size=int(sizes["dataLogSize"])) == apache_pairs
    # Apache started despite the unknown key; we accept it too, with a warning.
    assert cfg.system_properties["zookeeper.fooBar"] == "1" and any("fooBar" in w for w in cfg.warnings)


_BAD_CONFIGS = {
    "non-integer tickTime": ("tickTime=abc\n", "tickTime", 2),
    "missing dataDir": (None, "dataDir", None),
    "min above max session timeout": ("minSessionTimeout=50000\nmaxSessionTimeout=4000\n", "minSessionTimeout", 2),
    "bad server line": ("server.1=localhost:2888\nserver.2=localhost:2889:3889\n", "server.1", 2),
    "trailing blank in server line": ("initLimit=5\nsyncLimit=2\nserver.1=localhost:2888:3888 \n"
                                      "server.2=localhost:2889:3889\nserver.3=localhost:2890:3890\n", "server.1", 4),
}


@pytest.mark.apache
@pytest.mark.parametrize("case", sorted(_BAD_CONFIGS))
def test_configs_apache_zookeeper_refuses_are_refused_naming_key_and_line(tmp_path, case):
    body, key, line = _BAD_CONFIGS[case]
    data = tmp_path / "data"
    data.mkdir()
    port = f"clientPort={free_port()}\n"
    path = write(tmp_path, port if body is None else f"dataDir={data}\n{body}{port}")
    run = subprocess.run(["java", "-Xmx256m", "-Dzookeeper.admin.enableServer=false", "-cp", apache_classpath(),
                          "org.apache.zookeeper.server.quorum.QuorumPeerMain", str(path)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2, run.stdout[-2000:]  # "Invalid config, exiting abnormally"
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    assert (info.value.key, info.value.line) == (key, line)
