"""The README's front matter is what Hugging Face Spaces reads: it must parse and agree with the lock that the Space's
requirements.txt installs from."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def front_matter() -> dict:
    text = (ROOT / "README.md").read_text()
    assert text.startswith("---\n"), "README.md must open with the Space's YAML front matter"
    return yaml.safe_load(text.split("---\n")[1])


def test_front_matter_names_a_gradio_space_on_the_pinned_gradio():
    config = front_matter()
    pins = dict(line.split("==") for line in (ROOT / "requirements.lock").read_text().split() if "==" in line)
    assert config["sdk"] == "gradio"
    assert str(config["sdk_version"]) == pins["gradio"]
    assert (ROOT / "requirements.txt").read_text().split("\n", 1)[1].split() == [
        "-r",
        "requirements.in",
        "-c",
        "requirements.lock",
    ]
    assert (ROOT / config["app_file"]).is_file()
    assert {"title", "emoji", "suggested_hardware"} <= config.keys()


def test_front_matter_lists_the_three_checkpoints_and_packages_are_kept():
    models = front_matter()["models"]
    assert sorted(m.split("/")[1] for m in models) == ["Helios-Base", "Helios-Distilled", "Helios-Mid"]
    assert "ffmpeg" in (ROOT / "packages.txt").read_text().split()
