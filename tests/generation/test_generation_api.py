"""Generations over HTTP (in-process): sync answers, attribution, the ledger, images, idempotency."""

from __future__ import annotations

import io

from PIL import Image

from tests.generation.conftest import ADMIN


def generate(client, customer, model_id, **body):
    payload = {"model_id": str(model_id), "prompt": "red blocks", "seed": 7, "steps": 3, **body}
    headers = dict(customer.headers)
    return client.post("/v1/generations", json=payload, headers=headers)


def test_sync_generation_charges_attributes_and_delivers_signed_images(client, customer, served_model):
    response = generate(client, customer, served_model, num_images=2)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "succeeded" and body["mode"] == "sync" and body["seed"] == 7
    assert len(body["images"]) == 2
    attribution = body["attribution"]
    assert attribution["charge"] == 50 and attribution["pool"] == 20 and attribution["platform"] == 30
    assert sum(c["amount"] for c in attribution["contributors"]) == 20
    assert {c["display_name"] for c in attribution["contributors"]} == {"Artist 0", "Artist 1", "Artist 2"}

    png = client.get(body["images"][0]["url"], headers=customer.headers)
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(png.content)).size == (256, 256)
    raw = client.get(body["images"][0]["url"] + "?variant=raw", headers=customer.headers)
    assert Image.open(io.BytesIO(raw.content)).size == (32, 32)

    balances = client.get("/v1/ledger/balances", headers=ADMIN).json()
    assert balances["sums"] == {"USD": 0}
    me = client.get("/v1/me", headers=customer.headers).json()
    assert me["balance"]["amount"] == -50
