"""The local broker's server.properties and log4j2 configuration, as text."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

# Frames are 100-300 KB PNGs typically, but a camera may send 1-3 MB raw frames; 10 MiB leaves room.
MAX_MESSAGE_BYTES = 10 * 1024 * 1024


def broker_properties(data_dir: Path, port: int, controller_port: int, tls: Optional[object] = None) -> str:
    """server.properties of a single combined broker+controller node; `tls` (TlsMaterial) enables SASL_SSL."""
    controller = f"127.0.0.1:{controller_port}"
    lines = [
        "process.roles=broker,controller",
        "node.id=1",
        # With `StorageTool format --standalone` the voter set comes from the storage, not from
        # controller.quorum.voters; the controller stays on loopback PLAINTEXT, inside this host.
        f"controller.quorum.bootstrap.servers={controller}",
        "controller.listener.names=CONTROLLER",
        f"log.dirs={data_dir}",
        # Single node: every internal topic has replication factor 1 and min ISR 1.
        "offsets.topic.replication.factor=1",
        "offsets.topic.num.partitions=10",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "transaction.state.log.num.partitions=10",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
        "min.insync.replicas=1",
        "default.replication.factor=1",
        "num.partitions=3",
        # Tests create a group per test; waiting 3 s for more members each time would dominate.
        "group.initial.rebalance.delay.ms=0",
        f"message.max.bytes={MAX_MESSAGE_BYTES}",
        f"replica.fetch.max.bytes={MAX_MESSAGE_BYTES}",
        # A 2-core machine shared with workers: fewer threads than the defaults (3 network, 8 io).
        "num.network.threads=2",
        "num.io.threads=4",
        "num.recovery.threads.per.data.dir=1",
        "log.retention.hours=6",
        "log.segment.bytes=268435456",
    ]
    if tls is None:
        lines += [
            f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://{controller}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT",
        ]
    else:
        # Clients only ever see SASL_SSL; the broker's own (inter-broker) identity is a SCRAM user too.
        jaas = (f'org.apache.kafka.common.security.scram.ScramLoginModule required '
                f'username="{tls.broker_user}" password="{tls.broker_password}";')
        lines += [
            f"listeners=SASL_SSL://localhost:{port},CONTROLLER://{controller}",
            f"advertised.listeners=SASL_SSL://localhost:{port}",
            "listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name=SASL_SSL",
            "sasl.enabled.mechanisms=SCRAM-SHA-512",
            "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
            f"listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={jaas}",
            "ssl.keystore.type=PEM",
            f"ssl.keystore.location={tls.keystore_file}",
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={tls.ca_file}",
            "ssl.client.auth=none",
        ]
    return "\n".join(lines) + "\n"


def log4j2_properties(log_file: Path) -> str:
    """log4j2 config: INFO to a size-rolled file in the run dir, chatty loggers turned down."""
    return f"""status = warn
appender.file.type = RollingFile
appender.file.name = file
appender.file.fileName = {log_file}
appender.file.filePattern = {log_file}.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 20MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
"""
