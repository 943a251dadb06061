"""Confluent's own Schema Registry client against the registry `harness up`
serves: it reads what the generator registered, registers a producer's
schema of its own, and serializes events with Confluent's AvroSerializer
into `harness run` input lines (value_base64), for a transform to read
with that schema. Prints what it saw as one JSON object.

usage: registry_client.py REGISTRY_URL OUTPUT_FILE
"""

import base64
import json
import sys

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

url, output = sys.argv[1], sys.argv[2]
client = SchemaRegistryClient({"url": url})

subjects = client.get_subjects()
generators = client.get_latest_version("logs-value")
by_id = client.get_schema(generators.schema_id)
assert by_id.schema_str == generators.schema.schema_str, "the same schema by id and by subject"
assert by_id.schema_type == "AVRO", by_id.schema_type

# A producer's own writer schema: another field order, cost as text, a
# field the pipeline does not know, no event id.
producers = json.dumps({
    "type": "record",
    "name": "Click",
    "namespace": "shop.ads",
    "fields": [
        {"name": "campaign_id", "type": "string"},
        {"name": "channel", "type": "string"},
        {"name": "event", "type": "string"},
        {"name": "cost", "type": "string"},
        {"name": "ts", "type": "string"},
        {"name": "user_id", "type": "string"},
        {"name": "placement", "type": ["null", "string"], "default": None},
    ],
})
registered_id = client.register_schema("logs-value", Schema(producers, "AVRO"))
again = client.register_schema("logs-value", Schema(producers, "AVRO"))
assert again == registered_id, "registering the same schema again keeps its id"
found = client.lookup_schema("logs-value", Schema(producers, "AVRO"))

serialize = AvroSerializer(client, producers, conf={"auto.register.schemas": False, "use.latest.version": False})
context = SerializationContext("logs", MessageField.VALUE)
events = [
    {"campaign_id": "spring_sale", "channel": "email", "event": "click", "cost": "1.25",
     "ts": "2025-08-17T14:46:04", "user_id": "u1", "placement": "feed"},
    {"campaign_id": "spring_sale", "channel": "email", "event": "conversion", "cost": "10.000001",
     "ts": "2025-08-17T14:46:30", "user_id": "u2", "placement": None},
    {"campaign_id": "spring_sale", "channel": "email", "event": "impression", "cost": "0",
     "ts": "2025-08-17T14:46:59", "user_id": "u3", "placement": None},
]
with open(output, "w") as out:
    for event in events:
        value = serialize(event, context)
        line = {"key": "spring_sale|email", "value_base64": base64.b64encode(value).decode()}
        out.write(json.dumps(line) + "\n")

print(json.dumps({
    "subjects": subjects,
    "generator_id": generators.schema_id,
    "generator_version": generators.version,
    "registered_id": registered_id,
    "found_version": found.version,
    "versions": client.get_versions("logs-value"),
}))
