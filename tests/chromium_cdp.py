"""A tiny Chrome DevTools Protocol client over ``--remote-debugging-pipe`` (no websocket package).

Chromium reads NUL-terminated JSON commands on file descriptor 3 and writes replies and events
on descriptor 4. Enough here to load a page with or without JavaScript, read its DOM, evaluate
an expression and list the network requests it made.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from typing import Self

CHROMIUM = "/usr/bin/chromium"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions")


class Chromium:
    """One headless browser; use as a context manager."""

    def __init__(self, *flags: str, timeout: float = 30.0):
        self.timeout = timeout
        self._profile = tempfile.TemporaryDirectory()
        to_chrome_r, to_chrome_w = os.pipe()
        from_chrome_r, from_chrome_w = os.pipe()

        def wire_pipes():  # in the child: commands on fd 3, replies on fd 4
            commands, replies = os.dup(to_chrome_r), os.dup(from_chrome_w)
            os.dup2(commands, 3)
            os.dup2(replies, 4)

        self._proc = subprocess.Popen(
            [CHROMIUM, *FLAGS, "--remote-debugging-pipe", f"--user-data-dir={self._profile.name}", *flags,
             "about:blank"],
            pass_fds=(3, 4), preexec_fn=wire_pipes,  # noqa: PLW1509 - only dup2 in the child; no threads here stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._out = os.fdopen(to_chrome_w, "wb")
        self._in = from_chrome_r
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []
        self.session: str | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def _read(self) -> dict:
        deadline = time.monotonic() + self.timeout
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline:
                raise TimeoutError("no reply from Chromium")
            chunk = os.read(self._in, 1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, browser_level: bool = False, **params) -> dict:
        """Send a command (to the attached page unless ``browser_level``) and return its result."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if self.session and not browser_level:
            message["sessionId"] = self.session
        self._out.write(json.dumps(message).encode() + b"\0")
        self._out.flush()
        while True:
            reply = self._read()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str) -> dict:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            for index, event in enumerate(self.events):
                if event.get("method") == method:
                    return self.events.pop(index)
            self.events.append(self._read())
        raise TimeoutError(method)

    def open(self, url: str, javascript: bool = True) -> None:
        """Load a page in a new tab (scripts disabled when asked) and wait for its load event."""
        target = self.send("Target.createTarget", browser_level=True, url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", browser_level=True, targetId=target,
                                 flatten=True)["sessionId"]
        self.send("Page.enable")
        self.send("Network.enable")
        if not javascript:
            self.send("Emulation.setScriptExecutionDisabled", value=True)
        self.send("Page.navigate", url=url)
        self.wait_for("Page.loadEventFired")

    def dom(self) -> str:
        """The page's DOM as HTML, read through DevTools (works with scripts disabled)."""
        root = self.send("DOM.getDocument", depth=-1)["root"]
        return self.send("DOM.getOuterHTML", nodeId=root["nodeId"])["outerHTML"]

    def evaluate(self, expression: str):
        return self.send("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def requested_urls(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events if e.get("method") == "Network.requestWillBeSent"]

    def close(self) -> None:
        try:
            self.session = None
            self.send("Browser.close", browser_level=True)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        try:
            self._out.close()
        except OSError:
            pass
        os.close(self._in)
        self._profile.cleanup()
