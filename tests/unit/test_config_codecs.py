"""config-check and every start-up say, before anything connects, that an output cannot
carry the codec an input declares (``[[inputs]] codec``), and that two inputs declare
codecs Relay will not switch between (BEHAVIOUR §2)."""

from __future__ import annotations

from pathlib import Path

from relay.config import load_settings
from tests.unit.test_config import MINIMAL, one, problems, write


def _with(main: str | None, backup: str | None, extra: str = "") -> str:
    text = MINIMAL
    if main:
        text = text.replace('key = "main-key-1234"', f'key = "main-key-1234"\ncodec = "{main}"')
    if backup:
        text = text.replace('key = "backup-key-5678"', f'key = "backup-key-5678"\ncodec = "{backup}"')
    return text + extra


def test_a_legacy_output_cannot_carry_a_declared_hevc_input(tmp_path: Path) -> None:
    found = problems(write(tmp_path, _with("hevc", "hevc")))
    line = one(found, "outputs.douyin.video_tags")
    assert '"legacy"' in line and "cannot carry HEVC" in line and "inputs.main.codec" in line
    assert "video_tags = 'enhanced'" in line and "'codec_id_12'" in line
    assert "DOUYIN-KEY" not in "\n".join(found)  # the URL's key is never quoted


def test_an_output_that_reads_hevc_passes_and_av1_needs_enhanced_rtmp(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, _with("hevc", "hevc", '\nvideo_tags = "codec_id_12"\n')), {})
    assert settings.outputs[0].video_tags == "codec_id_12" and settings.inputs[0].codec == "hevc"
    found = problems(write(tmp_path, _with("av1", "av1", '\nvideo_tags = "codec_id_12"\n')))
    assert "cannot carry AV1" in one(found, "outputs.douyin.video_tags")
    load_settings(write(tmp_path, _with("av1", "av1", '\nvideo_tags = "enhanced"\n')), {})


def test_srt_outputs_carry_hevc_but_not_av1(tmp_path: Path) -> None:
    text = _with("av1", None).replace('urls = ["rtmp://push-1.example.com/live/DOUYIN-KEY-1", '
                                      '"rtmp://push-2.example.com/live/DOUYIN-KEY-1"]',
                                      'urls = ["srt://push.example.com:9000?streamid=KEY"]')
    line = one(problems(write(tmp_path, text)), "outputs.douyin.urls")
    assert "srt://" in line and "cannot carry AV1" in line and "KEY" not in line
    load_settings(write(tmp_path, text.replace('codec = "av1"', 'codec = "hevc"')), {})


def test_declared_codecs_that_differ_are_a_pair_relay_will_not_switch(tmp_path: Path) -> None:
    found = problems(write(tmp_path, _with("h264", "hevc", '\nvideo_tags = "enhanced"\n')))
    line = one(found, "inputs.backup.codec")
    assert "'main' sends H.264" in line and "mixed_codecs" in line
    mixed = _with("h264", "hevc", '\n[failover]\nmixed_codecs = true\n').replace(
        "\n[[outputs]]", '\n[[outputs]]\nvideo_tags = "enhanced"', 1)
    load_settings(write(tmp_path, mixed), {})
