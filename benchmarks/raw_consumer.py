#!/usr/bin/env python3
"""The reference the shipper is measured against: a plain pika consumer that writes each
batch to the store and acks it, with nothing of accre-monitor in it.

It takes messages with the given prefetch, and when `batch` of them are in hand (or `wait`
seconds passed since the first one) writes them in one Redis pipeline (the writes the Redis
output does: the `seen` marker, the history stream, the latest hash, the pub/sub message) or
one Elasticsearch `_bulk` (a `create` by record id into the day's index, with the `data_flat`
copy), then acks them all with one `multiple` ack. It exits after `count` messages.

Usage: python benchmarks/raw_consumer.py redis|elasticsearch AMQP_URL QUEUE STORE_URL COUNT
           [--prefetch N] [--batch N] [--wait S] [--history-length N]
"""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

import orjson
import pika

PREFIX = "accre-monitor"


def redis_writer(url: str, history_length: int) -> Any:
    import redis

    client = redis.Redis.from_url(url)

    def write(bodies: list[bytes]) -> None:
        with client.pipeline(transaction=False) as pipe:
            for body in bodies:
                record = orjson.loads(body)
                pipe.set(f"{PREFIX}:seen:{record['id']}", 1, nx=True, ex=604800)
                pipe.xadd(
                    f"{PREFIX}:history", {"record": body}, maxlen=history_length, approximate=True
                )
                pipe.hset(
                    f"{PREFIX}:latest:{record['node']}:{record['name']}",
                    mapping={"record": body, "status": record["status"], "ts": record["date"]},
                )
                pipe.publish(f"{PREFIX}:results", body)
            pipe.execute()

    return write


def elasticsearch_writer(url: str) -> Any:
    from elasticsearch import Elasticsearch

    client = Elasticsearch(url, request_timeout=30, max_retries=0, retry_on_timeout=False)

    def write(bodies: list[bytes]) -> None:
        lines = []
        for body in bodies:
            record = orjson.loads(body)
            day = dt.datetime.fromisoformat(record["date"]).astimezone(dt.UTC)
            index = day.strftime(f"{PREFIX}-%Y.%m.%d")
            document = {**record, "data_flat": {"value": record["data"]}}
            lines.append(orjson.dumps({"create": {"_index": index, "_id": record["id"]}}))
            lines.append(orjson.dumps(document))
        lines.append(b"")  # the body ends with a newline
        answer = client.bulk(operations=b"\n".join(lines))
        if answer["errors"]:
            raise SystemExit(f"bulk errors: {answer['items'][:3]}")

    return write


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", choices=["redis", "elasticsearch"])
    parser.add_argument("amqp_url")
    parser.add_argument("queue")
    parser.add_argument("store_url")
    parser.add_argument("count", type=int)
    parser.add_argument("--prefetch", type=int, default=500)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--wait", type=float, default=1.0)
    parser.add_argument("--history-length", type=int, default=10000)
    args = parser.parse_args()

    if args.store == "redis":
        write = redis_writer(args.store_url, args.history_length)
    else:
        write = elasticsearch_writer(args.store_url)
    connection = pika.BlockingConnection(pika.URLParameters(args.amqp_url))
    channel = connection.channel()
    channel.basic_qos(prefetch_count=args.prefetch)
    bodies: list[bytes] = []
    last_tag = 0
    done = 0
    for method, _properties, body in channel.consume(args.queue, inactivity_timeout=args.wait):
        if method is not None:
            bodies.append(body)
            last_tag = method.delivery_tag
        if bodies and (len(bodies) >= args.batch or method is None):
            write(bodies)
            channel.basic_ack(last_tag, multiple=True)
            done += len(bodies)
            bodies = []
            if done >= args.count:
                break
    channel.cancel()
    connection.close()


if __name__ == "__main__":
    main()
