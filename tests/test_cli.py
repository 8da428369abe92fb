"""The `feedbot` command as a user runs it: subprocesses, real exit codes and output."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from testkit.feed_server import FeedServer
from testkit.harness import shared_dir
from testkit.telegram_html import check_message

SHARED = shared_dir()


async def feedbot(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None):
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
        cwd=cwd,
        env={**os.environ, "FEEDBOT_TOKEN": "", "FEEDBOT_CONFIG": "", **(env or {})},
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode, out.decode(), err.decode()


def html_blocks(output: str) -> list[tuple[str, str]]:
    """(header, message html) pairs of `feedbot check` output."""
    blocks = []
    for chunk in output.split("\n--- ")[1:]:
        header, _, body = chunk.partition("\n")
        lines = [line for line in body.split("\n") if not line.startswith("    ")]  # media URLs
        blocks.append((header, "\n".join(lines).strip("\n")))
    return blocks


async def test_check_prints_valid_telegram_html_for_newest_entries(tmp_path, feeds: FeedServer):
    feed = feeds.rss("/news.xml", title="Checked Feed")
    for n in range(5):
        feed.publish(
            f'Item {n} <&> "quoted"', link=f"https://c.example/{n}", html=f"<p>Text {n}</p>"
        )
    code, out, err = await feedbot("check", feeds.url("/news.xml"), "--limit", "2", cwd=tmp_path)
    assert code == 0, err
    assert out.startswith("# Checked Feed")
    blocks = html_blocks(out)
    assert len(blocks) == 2
    assert "Item 4" in blocks[0][0] and "Item 3" in blocks[1][0]  # newest first
    for header, body in blocks:
        check_message(body, caption="(caption " in header)
        assert "&lt;&amp;&gt;" in body


async def test_check_the_chinese_example_from_a_file(tmp_path):
    if SHARED is None:
        pytest.skip("the shared examples folder is not here")
    voa = SHARED / "examples" / "voa-chinese.rss.xml"
    code, out, err = await feedbot("check", str(voa), "--limit", "1", cwd=tmp_path)
    assert code == 0, err
    ((header, body),) = html_blocks(out)
    assert "俄罗斯和美国就乌克兰和安全问题再次争吵" in header
    assert "sendPhoto (caption " in header  # the video's poster, with the text as caption
    check_message(body, caption=True)
    assert 'href="https://www.voachinese.com/a/us-Russia-talks-20220111/6393207.html"' in body
    assert "feedx.net" not in body  # the aggregator's footer is not the news


async def test_check_previews_a_style(tmp_path, feeds: FeedServer):
    feed = feeds.rss("/styled.xml", title="Styled")
    feed.publish(
        "Tagged", link="https://s.example/1", html="<p>Body text here.</p>", categories=["Rust"]
    )
    url = feeds.url("/styled.xml")
    code, out, _ = await feedbot("check", url, "--limit", "1", cwd=tmp_path)
    assert code == 0 and "#Rust" in out and "Body text here." in out
    code, out, _ = await feedbot(
        "check", url, "--limit", "1", "--set", "tags=off", "--set", "summary=none", cwd=tmp_path
    )
    assert code == 0 and "#Rust" not in out and "Body text here." not in out
    code, out, err = await feedbot("check", url, "--set", "colour=red", cwd=tmp_path)
    assert code == 2 and out == "" and "Unknown setting 'colour'" in err


async def test_check_failures_are_one_line_and_nonzero(tmp_path, feeds: FeedServer):
    feeds.fail("/gone.xml", status=404)
    feeds.set_feed("/page.html", "<html><body>Just a page</body></html>", "text/html")
    for target in (
        feeds.url("/gone.xml"),
        feeds.url("/page.html"),
        "ftp://x.example/feed",
        "http://127.0.0.1:1/",
    ):
        code, out, err = await feedbot("check", target, cwd=tmp_path)
        assert code != 0, target
        assert out == ""
        assert len(err.strip().splitlines()) == 1, err
        assert err.startswith("feedbot: ")


async def test_check_on_a_web_page_uses_the_feed_it_names_and_says_which(
    tmp_path, feeds: FeedServer
):
    feeds.rss("/blog/feed.xml", title="The Blog").publish("Declared post")
    feeds.set_feed(
        "/blog/post.html",
        '<html><head><link rel="alternate" type="application/rss+xml" href="feed.xml">'
        "</head><body>A post</body></html>",
        "text/html; charset=utf-8",
    )
    code, out, err = await feedbot("check", feeds.url("/blog/post.html"), cwd=tmp_path)
    assert code == 0, err
    first, second = out.splitlines()[:2]
    assert first == (
        f"# {feeds.url('/blog/post.html')} is a web page; "
        f"using the feed it names: {feeds.url('/blog/feed.xml')}"
    )
    assert second.startswith("# The Blog (")
    assert "Declared post" in out

    feeds.set_feed("/site/index.html", "<html><body>No links</body></html>", "text/html")
    feeds.atom("/site/atom.xml", title="Guessed").publish("Guessed post")
    code, out, err = await feedbot("check", feeds.url("/site/index.html"), cwd=tmp_path)
    assert code == 0, err
    assert f"names no feed; using {feeds.url('/site/atom.xml')}" in out.splitlines()[0]
    assert "Guessed post" in out


async def test_check_piped_into_head_exits_quietly(tmp_path, feeds: FeedServer):
    feed = feeds.rss("/long.xml", title="Long")
    for n in range(40):  # far more output than a pipe buffers
        feed.publish(f"Entry {n}", link=f"https://l.example/{n}", html="<p>" + "word " * 700)
    command = f"{sys.executable} -m bot check {feeds.url('/long.xml')} --limit 40 | head -1"
    process = await asyncio.create_subprocess_shell(
        f"set -o pipefail 2>/dev/null; {command}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=tmp_path,
        env={**os.environ, "FEEDBOT_TOKEN": "", "FEEDBOT_CONFIG": ""},
        executable="/bin/bash",
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert out.decode().startswith("# Long (")
    assert err.decode() == ""
    assert process.returncode == 0  # with pipefail: feedbot's own status too


async def test_run_refuses_a_bad_config_with_one_line_naming_the_key(tmp_path):
    cases = {
        '[telegram]\ntoken = "1:A"\ntokn = "x"\n': "telegram.tokn",
        '[telegram]\ntoken = "1:A"\n[poll]\ninterval = "soon"\n': "poll.interval",
        '[telegram]\ntoken = "1:A"\nadmins = "me"\n': "telegram.admins",
        '[telegram]\ntoken = "1:A"\n[stor]\npath = "x"\n': "stor",
    }
    config = tmp_path / "config.toml"
    for text, key in cases.items():
        config.write_text(text)
        code, _, err = await feedbot("run", "--config", str(config), cwd=tmp_path)
        assert code == 2, (text, err)
        assert len(err.strip().splitlines()) == 1, err
        assert key in err


async def test_run_without_token_says_how_to_give_one(tmp_path):
    code, _, err = await feedbot("run", cwd=tmp_path)
    assert code == 2
    assert "FEEDBOT_TOKEN" in err or "token" in err
    assert len(err.strip().splitlines()) == 1


async def test_console_script_is_installed():
    script = Path(sys.executable).with_name("feedbot")
    assert script.exists(), "pip install . installs the feedbot console script"
    process = await asyncio.create_subprocess_exec(
        str(script), "--help", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    assert process.returncode == 0
    assert b"check" in out and b"run" in out


async def test_run_with_a_token_telegram_refuses_stops_with_one_line(tmp_path, telegram):
    from testkit.harness import write_config

    config = write_config(tmp_path, telegram)
    text = config.read_text().replace('token = "123456:TEST"', 'token = "999:WRONG"')
    config.write_text(text)
    code, out, err = await feedbot("run", "--config", str(config), cwd=tmp_path)
    assert code == 1
    assert out == ""
    # Only the one line that says what is wrong: no traceback, no log lines first.
    assert err.strip().splitlines() == [
        "feedbot: Telegram refused the bot token (telegram.token or FEEDBOT_TOKEN)."
    ]
    assert "WRONG" not in err, "the token never appears in the output"


async def _starting_bot_says(config: Path, *expected: str) -> list[str]:
    """Start the bot as a user does; within a few seconds its log must hold
    one error line with every ``expected`` piece; the bot keeps retrying
    (still running) and stops cleanly on SIGTERM."""
    from testkit.harness import bot_log, eventually, start_bot

    process = await start_bot(config)
    try:
        await eventually(lambda: "retrying" in bot_log(config), timeout=15, message="one line")
        await asyncio.sleep(1.5)  # a retry or more, which must not repeat the line
        assert process.returncode is None, "keeps trying instead of exiting"
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 15)
    lines = bot_log(config).strip().splitlines()
    errors = [line for line in lines if " ERROR " in line]
    assert len(errors) == 1, lines
    for piece in expected:
        assert piece in errors[0], errors[0]
    assert "Traceback" not in bot_log(config)
    assert process.returncode == 0
    return lines


async def test_run_against_an_unreachable_api_says_so_and_keeps_retrying(tmp_path, telegram):
    from testkit.harness import write_config

    config = write_config(tmp_path, telegram)
    config.write_text(config.read_text().replace(telegram.base_url, "http://127.0.0.1:1/bot"))
    await _starting_bot_says(config, "cannot reach Telegram at http://127.0.0.1:1/bot", "retrying")


async def test_run_against_a_url_that_answers_404_says_so_and_keeps_retrying(tmp_path, telegram):
    from testkit.harness import write_config

    config = write_config(tmp_path, telegram)
    without_bot = telegram.base_url.removesuffix("bot")
    config.write_text(config.read_text().replace(telegram.base_url, without_bot))
    lines = await _starting_bot_says(config, "404 Not Found", "ends in /bot", "retrying")
    assert not any("refused the bot token" in line for line in lines)
