"""A real single-node Apache Kafka broker for development and tests (``scripts/kafka``).

Apache Kafka (``org.apache.kafka:kafka_2.13``) and its runtime dependencies come from Maven
Central through ``mvn`` into a git-ignored cache; the broker runs in KRaft combined mode
(broker and controller in one JVM), listens on 127.0.0.1 only, and logs through Log4j 2 to
``<data dir>/logs/server.log`` instead of the terminal.

This module uses the standard library only, so the same code serves ``scripts/kafka``
and the test fixtures. Production points at a real cluster instead (``pipelines.settings``).

Environment (all optional):

``AUDITOR_KAFKA_PORT``
    Client (PLAINTEXT) port, default 19092.
``AUDITOR_KAFKA_CONTROLLER_PORT``
    KRaft controller port, default 19093.
``AUDITOR_KAFKA_DATA_DIR``
    Broker state, configuration, pid file and logs; default ``.cache/kafka/data``.
``AUDITOR_KAFKA_CACHE``
    Where the jars are fetched; default ``.cache/kafka``.
``AUDITOR_KAFKA_HEAP``
    JVM maximum heap, default ``512m`` (the machine has two cores and other work).
``AUDITOR_KAFKA_JAVA_OPTS``
    More JVM options, after ours (so they win), e.g. ``-XX:TieredStopAtLevel=4`` for the
    full JIT in a long benchmark.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

KAFKA_VERSION: Final = "4.1.1"
# Kafka 4.1 logs through SLF4J 1.7 (slf4j-api 1.7.36) and ships log4j-core 2.24.3 as a
# runtime dependency; log4j-slf4j-impl is the matching 1.7 binding of the same release.
LOG4J_VERSION: Final = "2.24.3"
DEPENDENCY_PLUGIN: Final = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 19092
DEFAULT_CONTROLLER_PORT: Final = 19093
_REPO_ROOT: Final = Path(__file__).resolve().parents[2]
_COMPLETE_MARKER: Final = ".complete"
_METADATA_API_KEY: Final = 3
# Kafka 4 removed Metadata v0-v3 (KIP-896); v4 is the oldest it answers and is not yet a
# "flexible" (tagged-field) version, so its encoding stays simple.
_METADATA_VERSION: Final = 4


class BrokerError(Exception):
    """The development broker could not be fetched, started or stopped."""


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    """Where the development broker lives and listens."""

    port: int = DEFAULT_PORT
    controller_port: int = DEFAULT_CONTROLLER_PORT
    data_dir: Path = _REPO_ROOT / ".cache" / "kafka" / "data"
    cache_dir: Path = _REPO_ROOT / ".cache" / "kafka"
    heap: str = "512m"
    java_options: tuple[str, ...] = ()

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> BrokerConfig:
        """Read ``AUDITOR_KAFKA_*`` variables; unset ones keep their defaults."""
        env = os.environ if environ is None else environ
        defaults = cls()
        try:
            port = int(env.get("AUDITOR_KAFKA_PORT", defaults.port))
            controller_port = int(
                env.get("AUDITOR_KAFKA_CONTROLLER_PORT", defaults.controller_port)
            )
        except ValueError:
            raise BrokerError(
                "AUDITOR_KAFKA_PORT and ..._CONTROLLER_PORT must be integers"
            ) from None
        if port == controller_port:
            raise BrokerError("the client and controller ports must differ")
        return cls(
            port=port,
            controller_port=controller_port,
            data_dir=Path(env.get("AUDITOR_KAFKA_DATA_DIR", defaults.data_dir)).resolve(),
            cache_dir=Path(env.get("AUDITOR_KAFKA_CACHE", defaults.cache_dir)).resolve(),
            heap=env.get("AUDITOR_KAFKA_HEAP", defaults.heap),
            java_options=tuple(env.get("AUDITOR_KAFKA_JAVA_OPTS", "").split()),
        )

    @property
    def bootstrap(self) -> str:
        """``host:port`` for clients."""
        return f"{HOST}:{self.port}"

    @property
    def libs_dir(self) -> Path:
        """The fetched jars of this Kafka version."""
        return self.cache_dir / KAFKA_VERSION / "libs"

    @property
    def log_file(self) -> Path:
        """The broker's own log (Log4j 2)."""
        return self.data_dir / "logs" / "server.log"

    @property
    def pid_file(self) -> Path:
        """Holds the pid of the broker this helper started."""
        return self.data_dir / "broker.pid"


class LocalBroker:
    """Fetches, formats, starts and stops one development broker.

    Args:
        config: Ports and directories; ``BrokerConfig.from_environment()`` by default.
    """

    def __init__(self, config: BrokerConfig | None = None) -> None:
        self.config = config or BrokerConfig.from_environment()

    @property
    def bootstrap(self) -> str:
        """``host:port`` for clients."""
        return self.config.bootstrap

    # -- fetch ---------------------------------------------------------------------------

    def fetch(self) -> Path:
        """Download Kafka and its runtime dependencies with Maven, once; return the jar dir.

        Raises:
            BrokerError: ``mvn`` is missing or Maven failed (its output's tail is included).
        """
        libs = self.config.libs_dir
        if (libs / _COMPLETE_MARKER).exists():
            return libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise BrokerError(
                "mvn (Apache Maven) is not on PATH; install it (Debian: apt-get install maven)"
            )
        work = libs.parent
        work.mkdir(parents=True, exist_ok=True)
        pom = work / "pom.xml"
        pom.write_text(_pom(), encoding="utf-8")
        staging = work / "libs.partial"
        shutil.rmtree(staging, ignore_errors=True)
        _say(f"fetching Apache Kafka {KAFKA_VERSION} from Maven Central into {libs}")
        result = subprocess.run(  # noqa: S603 - fixed argument list, no shell
            [
                mvn,
                "-B",
                "-q",
                "-f",
                str(pom),
                f"{DEPENDENCY_PLUGIN}:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={staging}",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0 or not any(staging.glob("kafka_2.13-*.jar")):
            tail = _tail_text(result.stdout + result.stderr)
            raise BrokerError(f"mvn could not fetch Kafka {KAFKA_VERSION}:\n{tail}")
        shutil.rmtree(libs, ignore_errors=True)
        staging.rename(libs)
        (libs / _COMPLETE_MARKER).write_text(KAFKA_VERSION + "\n", encoding="utf-8")
        return libs

    # -- lifecycle -----------------------------------------------------------------------

    def pid(self) -> int | None:
        """The pid of the broker this helper started, if it still runs."""
        try:
            pid = int(self.config.pid_file.read_text(encoding="ascii").strip())
        except (OSError, ValueError):
            return None
        return pid if _is_our_broker(pid, self._properties_path) else None

    def is_running(self) -> bool:
        """Whether the broker this helper started is alive."""
        return self.pid() is not None

    def start(self, timeout: float = 90.0) -> None:
        """Start the broker in the background and wait until it answers a metadata request.

        Idempotent: a broker already started from this data dir is left running.

        Raises:
            BrokerError: java is missing, the port is taken, or the broker did not become
                ready within ``timeout`` seconds (the message holds the log's tail).
        """
        if self.is_running():
            self.wait_ready(timeout)
            return
        java = shutil.which("java")
        if java is None:
            raise BrokerError(
                "java is not on PATH; Kafka 4 needs Java 17 (apt-get install openjdk-17-jre)"
            )
        for port in (self.config.port, self.config.controller_port):
            if _port_open(port):
                raise BrokerError(
                    f"{HOST}:{port} is already in use by another process; "
                    "choose other ports with AUDITOR_KAFKA_PORT / AUDITOR_KAFKA_CONTROLLER_PORT"
                )
        libs = self.fetch()
        self._write_configuration()
        self._format_storage(java, libs)
        self.config.log_file.parent.mkdir(parents=True, exist_ok=True)
        console = self.config.data_dir / "logs" / "console.out"
        with console.open("ab") as out:
            process = subprocess.Popen(  # noqa: S603 - fixed argument list, no shell
                [*self._java_command(java, libs), "kafka.Kafka", str(self._properties_path)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C in the terminal must not kill the broker
                cwd=self.config.data_dir,
            )
        self.config.pid_file.write_text(f"{process.pid}\n", encoding="ascii")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self.config.pid_file.unlink(missing_ok=True)
                raise BrokerError(
                    f"the broker exited with status {process.returncode} while starting:\n"
                    + self._log_tail()
                )
            if probe_metadata(HOST, self.config.port, timeout=1.0):
                return
            time.sleep(0.2)
        self.stop()
        raise BrokerError(
            f"the broker did not answer on {self.bootstrap} within {timeout:.0f}s:\n"
            + self._log_tail()
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until the broker answers a metadata request.

        Raises:
            BrokerError: it did not within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if probe_metadata(HOST, self.config.port, timeout=1.0):
                return
            time.sleep(0.2)
        raise BrokerError(f"no answer from {self.bootstrap} within {timeout:.0f}s")

    def stop(self, grace: float = 20.0) -> bool:
        """Stop the broker this helper started: SIGTERM, then SIGKILL after ``grace`` seconds.

        Returns:
            Whether a broker was running.
        """
        pid = self.pid()
        if pid is None:
            self.config.pid_file.unlink(missing_ok=True)
            return False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.05)
        self.config.pid_file.unlink(missing_ok=True)
        return True

    # -- files ---------------------------------------------------------------------------

    @property
    def _properties_path(self) -> Path:
        return self.config.data_dir / "server.properties"

    def _write_configuration(self) -> None:
        cfg = self.config
        (cfg.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        self._properties_path.write_text(_server_properties(cfg), encoding="utf-8")
        (cfg.data_dir / "log4j2.xml").write_text(_LOG4J2_XML, encoding="utf-8")

    def _format_storage(self, java: str, libs: Path) -> None:
        log_dir = self.config.data_dir / "kraft"
        if (log_dir / "meta.properties").exists():
            return
        # Kafka cluster ids are 16 random bytes in URL-safe base64 without padding.
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        result = subprocess.run(  # noqa: S603 - fixed argument list, no shell
            [
                *self._java_command(java, libs),
                "kafka.tools.StorageTool",
                "format",
                # One argument, not two: a random id may start with "-", which the
                # tool's parser would take for an option.
                f"--cluster-id={cluster_id}",
                "-c",
                str(self._properties_path),
                "--standalone",
            ],
            capture_output=True,
            text=True,
            check=False,
            cwd=self.config.data_dir,
        )
        if result.returncode != 0:
            raise BrokerError(
                "formatting KRaft storage failed:\n" + _tail_text(result.stdout + result.stderr)
            )

    def _java_command(self, java: str, libs: Path) -> list[str]:
        cfg = self.config
        return [
            java,
            "-Xms128m",
            f"-Xmx{cfg.heap}",
            # C1 only: starts twice as fast on two busy cores; the broker is never the
            # bottleneck of this project's Python clients.
            "-XX:TieredStopAtLevel=1",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={cfg.log_file.parent}",
            f"-Dlog4j2.configurationFile={cfg.data_dir / 'log4j2.xml'}",
            *cfg.java_options,
            "-cp",
            f"{libs}/*",
        ]

    def _log_tail(self, lines: int = 40) -> str:
        parts = []
        for path in (self.config.data_dir / "logs" / "console.out", self.config.log_file):
            with contextlib.suppress(OSError):
                parts.append(
                    f"--- {path} (tail)\n" + _tail_text(path.read_text("utf-8", "replace"), lines)
                )
        return "\n".join(parts) or "(no broker log was written)"


def probe_metadata(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether a Kafka broker at ``host:port`` answers a Metadata request listing a broker.

    Speaks just enough of the Kafka protocol (Metadata v4, no topics) to tell a ready
    broker from a port that merely accepts connections.
    """
    client_id = b"auditor-probe"
    correlation_id = 0x5EED
    header = struct.pack(
        ">hhih", _METADATA_API_KEY, _METADATA_VERSION, correlation_id, len(client_id)
    )
    body = struct.pack(">i?", 0, False)  # noqa: FBT003 - no topics (brokers only), no auto-create
    request = header + client_id + body
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">i", len(request)) + request)
            size = struct.unpack(">i", _recv_exact(sock, 4))[0]
            response = _recv_exact(sock, size)
    except (OSError, struct.error):
        return False
    # correlation id, throttle time, then the brokers array's length.
    got_id, _throttle, brokers = struct.unpack_from(">iii", response)
    return bool(got_id == correlation_id and brokers > 0)


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise OSError("connection closed")
        data += chunk
    return bytes(data)


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) counts as stopped.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
        return stat.rpartition(")")[2].split()[0] != "Z"
    return True


def _is_our_broker(pid: int, properties: Path) -> bool:
    """Whether ``pid`` is a Kafka JVM started with our properties file (pids get reused)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"kafka.Kafka" in cmdline and str(properties).encode() in cmdline and _alive(pid)


def _tail_text(text: str, lines: int = 40) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _say(message: str) -> None:
    sys.stderr.write(f"kafka: {message}\n")


def _pom() -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by scripts/kafka: the development broker's runtime classpath. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.cds-hooks-auditor</groupId>
  <artifactId>kafka-broker</artifactId>
  <version>{KAFKA_VERSION}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>{KAFKA_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>{LOG4J_VERSION}</version>
    </dependency>
  </dependencies>
</project>
"""


def _server_properties(cfg: BrokerConfig) -> str:
    return f"""# Generated by scripts/kafka: single-node KRaft broker+controller on {HOST} only.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers={HOST}:{cfg.controller_port}
listeners=PLAINTEXT://{HOST}:{cfg.port},CONTROLLER://{HOST}:{cfg.controller_port}
advertised.listeners=PLAINTEXT://{HOST}:{cfg.port},CONTROLLER://{HOST}:{cfg.controller_port}
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs={cfg.data_dir / "kraft"}
# One node: every replication factor is 1, internal topics included.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
default.replication.factor=1
min.insync.replicas=1
# Topics are created explicitly (auditor topics create); typos must not create topics.
auto.create.topics.enable=false
# Consumer groups form at once instead of waiting 3 s for more members.
group.initial.rebalance.delay.ms=0
num.partitions=1
offsets.topic.num.partitions=4
num.network.threads=2
num.io.threads=4
log.retention.hours=24
log.segment.bytes=67108864
"""


_LOG4J2_XML: Final = """<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by scripts/kafka: broker logs go to a rolling file, not the terminal. -->
<Configuration status="WARN">
  <Appenders>
    <RollingFile name="server" fileName="${sys:kafka.logs.dir}/server.log"
                 filePattern="${sys:kafka.logs.dir}/server.log.%i">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
      <SizeBasedTriggeringPolicy size="20MB"/>
      <DefaultRolloverStrategy max="3"/>
    </RollingFile>
  </Appenders>
  <Loggers>
    <Logger name="kafka.request.logger" level="WARN"/>
    <Logger name="org.apache.kafka.controller" level="INFO"/>
    <Logger name="state.change.logger" level="WARN"/>
    <Root level="INFO">
      <AppenderRef ref="server"/>
    </Root>
  </Loggers>
</Configuration>
"""


def main(argv: Sequence[str] | None = None) -> int:
    """``scripts/kafka fetch|start|stop|status``; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="scripts/kafka",
        description="A real single-node Apache Kafka broker on 127.0.0.1 for development and tests",
    )
    parser.add_argument("action", choices=("fetch", "start", "stop", "status"))
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for start")
    args = parser.parse_args(argv)
    try:
        broker = LocalBroker()
        if args.action == "fetch":
            _say(f"Kafka {KAFKA_VERSION} jars in {broker.fetch()}")
        elif args.action == "start":
            started = time.monotonic()
            already = broker.is_running()
            broker.start(timeout=args.timeout)
            how = "already running" if already else f"started in {time.monotonic() - started:.1f}s"
            _say(f"broker {how} on {broker.bootstrap} (pid {broker.pid()})")
            _say(f"broker log: {broker.config.log_file}")
        elif args.action == "stop":
            _say("broker stopped" if broker.stop() else "no broker of ours was running")
        else:
            pid = broker.pid()
            if pid is None:
                sys.stdout.write(f"stopped (bootstrap {broker.bootstrap})\n")
                return 3
            sys.stdout.write(f"running on {broker.bootstrap} (pid {pid})\n")
    except BrokerError as exc:
        _say(f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
