"""The README's first command: ``foundry demo`` on the embedded default, in an empty folder."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from provenance.influence import InfluenceConfig


def run_demo(tmp_path, *args, extra_env=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOUNDRY_")}
    env.update({"COLUMNS": "160", **(extra_env or {})})
    return subprocess.run([sys.executable, "-m", "foundry.cli", "demo", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=2700, check=False)  # a hang guard: a slow CI machine took ~1,100 s


@pytest.mark.slow
def test_demo_onboards_snapshots_and_trains_on_the_embedded_default(tmp_path, openmoji_tgz):
    result = run_demo(tmp_path, "--catalog", str(openmoji_tgz), "--train-steps", "4")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "var" / "foundry.db").is_file()
    assert any((tmp_path / "var" / "blobs" / "blobs").iterdir())
    out = result.stdout
    assert "catalog summary" in out and "Johanna Wellnitz" in out
    contributors_line = next(line for line in out.splitlines() if "contributors" in line and "│" in line)
    assert "121" in contributors_line
    # the demo trains without the catalog's held-out split (452 images), so it can be measured on it
    assert "3848 assets licensed for base training from 118 contributors" in out
    assert "licensed_only=True" in out and "after 4 steps" in out
    grid = tmp_path / "var" / "demo" / "sample_grid.png"
    assert grid.read_bytes().startswith(b"\x89PNG")
    measured = re.search(r"quality on (\d+) held-out prompts: balanced accuracy ([0-9.]+) \[([0-9.]+), ([0-9.]+)\] "
                         r"\(chance ([0-9.]+), real ceiling ([0-9.]+)", " ".join(out.split()))
    assert measured, out[-3000:]
    prompts, accuracy, low, high, chance, ceiling = (float(value) for value in measured.groups())
    assert prompts >= 12 and 0 <= low <= accuracy <= high <= 1 and 0 < chance < ceiling <= 1
    assert (tmp_path / "var" / "demo" / "quality_sheet.png").read_bytes().startswith(b"\x89PNG")
    # served through the real API: attribution, ledger, provenance
    flat = " ".join(out.split())
    assert "returned the same generation: True" in flat
    assert len(list((tmp_path / "var" / "demo").glob("generation-*.png"))) == 4
    version = InfluenceConfig().as_dict()["version"]  # the product's method, as the training job built it
    assert "attribution index" in flat and f": 3848 training images, dtrak-square-countsketch v{version}" in flat
    assert "118 contributors" in flat
    if "attribution (blend): charge 160, pool 80, platform 80" not in flat:  # a few steps may draw only noise
        assert "attribution (pro_rata): charge 160, pool 80, platform 80" in flat
        assert "influence not used: uninformative outputs" in flat and "split pro rata" in flat
    else:
        assert "training images paid most by influence" in flat
    assert "contributor amounts sum to 80 = pool 80: True" in flat
    assert "customer balance -160 USD" in flat and "all accounts sum to 0" in flat
    assert "found by c2pa, Content Credentials trusted, altered=False" in flat
    assert "manifest stripped: found by watermark" in flat
    statement = re.search(r"earned (\d+) \(pro rata (\d+), influence (\d+)\) from 1 generation\(s\), "
                          r"shared by their (\d+) images in the training data", flat)
    assert statement, flat[-3000:]
    earned, pro_rata, influence, images = (int(value) for value in statement.groups())
    assert earned == pro_rata + influence and earned > 0 and images > 0
    # an inpainting edit of the first output, signed with the output and the mask as its ingredients
    edited = re.search(r"edit \S+: the lower half of generation-0.png repainted .*? charged 40, pool 20; .*?"
                       r"Content Credentials trusted, ingredients: parentOf \w+…, componentOf \w+…", flat)
    assert edited, flat[-3000:]
    assert (tmp_path / "var" / "demo" / "edit-0.png").read_bytes().startswith(b"\x89PNG")
    # a custom model: the brand's mascot uploaded, a LoRA trained on it (4 steps, charged), images from it
    assert "20 brand images accepted" in flat and "'amount': 4, 'currency': 'USD'" in flat
    assert "on 20 brand images and 100 licensed catalog images mixed in" in flat
    assert re.search(r"custom model \S+ \(succeeded, 4 steps\) drew 4 images of zorblax", flat), flat[-3000:]
    assert "(the brand's own images earn nothing)" in flat
    assert len(list((tmp_path / "var" / "demo").glob("custom-*.png"))) == 4


def test_demo_explains_how_to_provide_a_missing_catalog(tmp_path):
    result = run_demo(tmp_path, extra_env={"FOUNDRY_DEMO_CATALOG": str(tmp_path / "missing.tgz")})
    assert result.returncode == 1
    assert "npm pack openmoji@17.0.0" in result.stderr and "--catalog" in result.stderr
