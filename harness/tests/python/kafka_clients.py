"""Kafka clients against `harness up`'s Kafka listener, as a data engineer's
notebook or script would use them.

    kafka_clients.py CLIENT produce BOOTSTRAP TOPIC FILE
        Produces each line of FILE (the harness's input format: partition,
        key, value, headers, timestamp) with the idempotent producer and
        acks=all; prints {"produced": N} once every record is acknowledged.

    kafka_clients.py CLIENT consume BOOTSTRAP TOPIC GROUP COUNT
        Reads TOPIC in consumer group GROUP until COUNT records came (or
        none for 20 s), commits, and prints one JSON line per record:
        partition, offset, key, value.

    kafka_clients.py CLIENT numbered BOOTSTRAP TOPIC COUNT
        Creates TOPIC (one partition), then produces records keyed k0, k1,
        ... with the idempotent producer and acks=all, printing "acked KEY"
        as each is acknowledged; it keeps retrying through a broker's
        restart for up to 5 minutes.

    kafka_clients.py CLIENT login BOOTSTRAP
        Connects and lists the topics; prints {"topics": [...]} or, when the
        client reports an error first, {"error": ..., "code": ...,
        "seconds": time to the first error}.

CLIENT is `confluent` (confluent-kafka, on librdkafka) or `kafka-python`
(an implementation of its own, in Python).

KAFKA_SASL=USER:PASSWORD:MECHANISM logs in with SASL SCRAM; KAFKA_CA=FILE
speaks TLS, trusting that CA.
"""

import json
import logging
import os
import sys
import time

IDLE_SECONDS = 20


def security_confluent():
    """librdkafka's properties for KAFKA_SASL and KAFKA_CA."""
    conf = {}
    sasl, ca = os.environ.get("KAFKA_SASL"), os.environ.get("KAFKA_CA")
    if sasl:
        user, password, mechanism = sasl.split(":")
        conf.update({"sasl.mechanism": mechanism, "sasl.username": user, "sasl.password": password})
    if ca:
        conf["ssl.ca.location"] = ca
    if sasl or ca:
        conf["security.protocol"] = ("SASL_" if sasl else "") + ("SSL" if ca else "PLAINTEXT")
    return conf


def security_kafka_python():
    """kafka-python's arguments for KAFKA_SASL and KAFKA_CA."""
    kwargs = {}
    sasl, ca = os.environ.get("KAFKA_SASL"), os.environ.get("KAFKA_CA")
    if sasl:
        user, password, mechanism = sasl.split(":")
        kwargs.update(
            {"sasl_mechanism": mechanism, "sasl_plain_username": user, "sasl_plain_password": password}
        )
    if ca:
        kwargs["ssl_cafile"] = ca
    if sasl or ca:
        kwargs["security_protocol"] = ("SASL_" if sasl else "") + ("SSL" if ca else "PLAINTEXT")
    return kwargs


def lines(path):
    with open(path, encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)


def headers_of(record):
    return [(k, None if v is None else v.encode()) for k, v in record.get("headers", {}).items()]


def produce_confluent(bootstrap, topic, path):
    from confluent_kafka import Producer

    failed = []
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            **security_confluent(),
        }
    )

    def delivered(err, _msg):
        if err is not None:
            failed.append(str(err))

    n = 0
    for record in lines(path):
        while True:
            try:
                producer.produce(
                    topic,
                    key=record.get("key"),
                    value=record.get("value"),
                    headers=headers_of(record),
                    partition=record["partition"],
                    timestamp=record.get("timestamp", 0),
                    on_delivery=delivered,
                )
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
        n += 1
    left = producer.flush(120)
    if failed or left:
        sys.exit(f"{len(failed)} failed ({failed[:3]}), {left} unacknowledged")
    return n


def produce_kafka_python(bootstrap, topic, path):
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        **security_kafka_python(),
    )
    futures = []
    for record in lines(path):
        futures.append(
            producer.send(
                topic,
                key=None if record.get("key") is None else record["key"].encode(),
                value=None if record.get("value") is None else record["value"].encode(),
                headers=headers_of(record),
                partition=record["partition"],
                timestamp_ms=record.get("timestamp"),
            )
        )
    producer.flush(120)
    for f in futures:
        f.get(timeout=60)
    producer.close()
    return len(futures)


def numbered_confluent(bootstrap, topic, count):
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap, **security_confluent()})
    admin.create_topics([NewTopic(topic, 1)])[topic].result(30)
    failed = []

    def delivered(err, msg):
        if err is None:
            print(f"acked {msg.key().decode()}", flush=True)
        else:
            failed.append(str(err))

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "reconnect.backoff.max.ms": 200,
            **security_confluent(),
        }
    )
    for i in range(count):
        while True:
            try:
                producer.produce(topic, key=f"k{i}", value=f"v{i}", on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
        # Spread over a few seconds, so that a kill lands mid-stream.
        if i % 500 == 0:
            time.sleep(0.05)
    left = producer.flush(300)
    if failed or left:
        sys.exit(f"{len(failed)} failed ({failed[:3]}), {left} unacknowledged")


def numbered_kafka_python(bootstrap, topic, count):
    from kafka import KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic

    KafkaAdminClient(bootstrap_servers=bootstrap, **security_kafka_python()).create_topics(
        [NewTopic(topic, 1, 1)]
    )
    failed = []
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        reconnect_backoff_max_ms=200,
        delivery_timeout_ms=300_000,
        **security_kafka_python(),
    )

    def acked(key):
        return lambda _metadata: print(f"acked {key}", flush=True)

    for i in range(count):
        future = producer.send(topic, key=f"k{i}".encode(), value=f"v{i}".encode())
        future.add_callback(acked(f"k{i}"))
        future.add_errback(lambda e: failed.append(str(e)))
        if i % 500 == 0:
            time.sleep(0.05)
    producer.flush(300)
    producer.close()
    if failed:
        sys.exit(f"{len(failed)} failed ({failed[:3]})")


def consume_confluent(bootstrap, topic, group, count):
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            **security_confluent(),
        }
    )
    consumer.subscribe([topic])
    got, quiet = [], time.monotonic()
    while len(got) < count and time.monotonic() - quiet < IDLE_SECONDS:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            sys.exit(f"consume: {msg.error()}")
        got.append(msg)
        quiet = time.monotonic()
    if got:
        consumer.commit(asynchronous=False)
    consumer.close()
    return [(m.partition(), m.offset(), m.key(), m.value()) for m in got]


def consume_kafka_python(bootstrap, topic, group, count):
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **security_kafka_python(),
    )
    got, quiet = [], time.monotonic()
    while len(got) < count and time.monotonic() - quiet < IDLE_SECONDS:
        for records in consumer.poll(timeout_ms=500).values():
            got.extend(records)
            quiet = time.monotonic()
    if got:
        consumer.commit()
    consumer.close()
    return [(m.partition, m.offset, m.key, m.value) for m in got]


def login_confluent(bootstrap):
    from confluent_kafka import KafkaException, Producer

    started, errors = time.monotonic(), []

    def error(e):
        if not errors:
            errors.append({"error": e.str(), "code": e.name(), "seconds": time.monotonic() - started})

    producer = Producer({"bootstrap.servers": bootstrap, "error_cb": error, **security_confluent()})
    # Short tries, serving the error callback between them.
    while time.monotonic() - started < 10:
        try:
            return {"topics": sorted(producer.list_topics(timeout=0.5).topics)}
        except KafkaException as e:
            last = {"error": str(e), "code": e.args[0].name()}
        producer.poll(0.1)
        if errors:
            return errors[0]
    return last


class FirstError(logging.Handler):
    """kafka-python reports a failed connection in its log, then retries
    until its timeout: the first report, and when it came."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.started, self.first = time.monotonic(), None

    def emit(self, record):
        if self.first is None and "Error" in record.getMessage():
            self.first = {"error": record.getMessage(), "seconds": time.monotonic() - self.started}


def login_kafka_python(bootstrap):
    from kafka import KafkaConsumer

    first = FirstError()
    logging.getLogger("kafka").addHandler(first)
    try:
        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap, bootstrap_timeout_ms=5_000, **security_kafka_python()
        )
        return {"topics": sorted(consumer.topics())}
    except Exception as e:  # the timeout that ends its retries
        found = first.first or {"error": str(e)}
        found["code"] = type(e).__name__
        return found


def text(b):
    return None if b is None else b.decode("utf-8", "replace")


def main():
    client, command, bootstrap = sys.argv[1:4]
    if client not in ("confluent", "kafka-python"):
        sys.exit(f"unknown client {client}")
    suffix = client.replace("-", "_")
    if command == "login":
        print(json.dumps(globals()[f"login_{suffix}"](bootstrap)))
        return
    topic = sys.argv[4]
    if command == "numbered":
        globals()[f"numbered_{suffix}"](bootstrap, topic, int(sys.argv[5]))
    elif command == "produce":
        n = globals()[f"produce_{suffix}"](bootstrap, topic, sys.argv[5])
        print(json.dumps({"produced": n}))
    elif command == "consume":
        group, count = sys.argv[5], int(sys.argv[6])
        for partition, offset, key, value in globals()[f"consume_{suffix}"](
            bootstrap, topic, group, count
        ):
            print(
                json.dumps(
                    {"partition": partition, "offset": offset, "key": text(key), "value": text(value)}
                )
            )
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main()
