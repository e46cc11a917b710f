"""The status page in a real browser: Debian's chromium, headless, driven by Playwright's
Python package (`executable_path`: no browser download). The heat map's pixels, its marks for
stale and silenced cells, the problems' order, the filters, the refresh without a reload, a
record full of markup that runs nothing, and silences added with the token only."""

from __future__ import annotations

import importlib.util
import os
import signal
import time

import pytest
from served import TOKEN, Served, record
from servers import chromium_binary, missing_reason
from test_rabbitmq import wait_until

from accre_monitor.pipeline.silence_cli import build_silence
from accre_monitor.pipeline.state import stale_record

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        importlib.util.find_spec("starlette") is None,
        reason="the web stack is not installed: pip install 'accre-monitor[web]'",
    ),
]

COLORS = {
    "OK": (0x2E, 0x9E, 0x44),
    "WARNING": (0xF2, 0xC2, 0x00),
    "CRITICAL": (0xD6, 0x2D, 0x20),
    "UNKNOWN": (0x9A, 0xA0, 0xA6),
}
DIMMED = 0.3  # a silenced cell's opacity over the white map
SHOWN = "!document.getElementById('{id}').hidden && document.getElementById('{id}').{text}"


@pytest.fixture(scope="module")
def browser():
    reason = missing_reason("chromium")
    if reason:
        pytest.skip(reason)
    if importlib.util.find_spec("playwright") is None:
        pytest.skip("playwright is not installed: pip install -e '.[test]'")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_binary())
        yield launched
        launched.close()


class Page:
    """A browser tab with what it said: dialogs (dismissed), console lines, script errors."""

    def __init__(self, browser, base: str, **context) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900}, **context)
        self.tab = self.context.new_page()
        self.base = base
        self.dialogs: list[str] = []
        self.console: list[str] = []
        self.errors: list[str] = []
        self.tab.on("dialog", self._dialog)
        self.tab.on("console", lambda message: self.console.append(message.text))
        self.tab.on("pageerror", lambda error: self.errors.append(str(error)))

    def _dialog(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def open(self, path: str = "/") -> Page:
        self.tab.goto(self.base + path)
        if path == "/" or path.startswith("/#"):
            self.until("window.statusPage && window.statusPage.renders > 0")
        return self

    def js(self, expression: str, arg=None):
        return self.tab.evaluate(expression, arg)

    def until(self, expression: str, timeout: float = 15.0, arg=None):
        """Poll a JavaScript expression until it is truthy (the page's policy forbids the
        eval that Playwright's own waiting would need)."""
        return wait_until(
            lambda: self.tab.evaluate(f"(arg) => {expression}", arg),
            timeout=timeout,
            what=expression,
        )

    def cell(self, node: str, check: str) -> list[tuple[int, int, int]]:
        """The colours of every pixel of a cell of the heat map."""
        found = self.js(
            """([node, check]) => {
                const rect = window.statusPage.cellRect(node, check);
                if (!rect) return null;
                const canvas = document.getElementById("map");
                const ratio = canvas.width / canvas.clientWidth;
                const side = Math.round(rect.size * ratio);
                const image = canvas.getContext("2d").getImageData(
                    Math.round(rect.x * ratio), Math.round(rect.y * ratio), side, side);
                const pixels = [];
                for (let i = 0; i < image.data.length; i += 4)
                    pixels.push([image.data[i], image.data[i + 1], image.data[i + 2]]);
                return pixels;
            }""",
            [node, check],
        )
        return None if found is None else [tuple(p) for p in found]

    def problems(self) -> list[tuple[str, str]]:
        return [
            tuple(row)
            for row in self.js(
                """() => [...document.querySelectorAll("#problems tbody tr")]
                    .map((tr) => [tr.dataset.node, tr.dataset.check])"""
            )
        ]

    def close(self) -> None:
        self.context.close()


def near(color, expected, tolerance: int = 3) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(color, expected, strict=True))


def dimmed(status: str) -> tuple[int, ...]:
    return tuple(round(255 + (c - 255) * DIMMED) for c in COLORS[status])


def fire_stale(store, node: str, check: str) -> None:
    entry = store.get(node, check)
    now = time.time()
    assert store.fire_stale(stale_record(entry, "UNKNOWN", now), entry.record_id, now)


def silence(store, **fields) -> str:
    fields = {"node": None, "check": None, "begin": None, "expire": None, "until": None,
              "on_resolve": False, "comment": None, **fields}  # fmt: skip
    made = build_silence(**fields, now=time.time())
    store.add_silence(made)
    return made.id


@pytest.fixture
def served(cli):
    server = Served(
        cli, {"url": f"sqlite:///{cli.tmp / 'state.db'}"}, {"token": TOKEN, "refresh": 1}
    )
    yield server
    server.stop()


@pytest.fixture
def page(browser, served):
    made: list[Page] = []

    def opening(path: str = "/", **context) -> Page:
        if not served.base:
            served.start()
        tab = Page(browser, served.base, **context)
        made.append(tab)
        return tab.open(path)

    yield opening
    for tab in made:
        tab.close()


def a_cluster(served: Served) -> None:
    served.take(
        record("gpu001", "ib_link", "CRITICAL", ago=600),
        record("gpu001", "load", "OK"),
        record("gpu002", "ib_link", "OK"),
        record("gpu002", "load", "WARNING", ago=60),
        record("gpu003", "ib_link", "UNKNOWN", ago=30),
        record("gpu003", "load", "OK", ago=30, ttl=5),
        record("cn01", "load", "CRITICAL", ago=120),
        record("cn02", "load", "OK"),
    )
    fire_stale(served.store, "gpu003", "load")
    silence(served.store, node="cn01", check="load", expire="1h", comment="fan swap, ask Ana")


# -- the heat map ----------------------------------------------------------------------------


def test_each_cell_of_the_heat_map_has_its_status_colour(served, page):
    a_cluster(served)
    tab = page()
    for node, check, status in [
        ("gpu001", "ib_link", "CRITICAL"),
        ("gpu001", "load", "OK"),
        ("gpu002", "load", "WARNING"),
        ("gpu003", "ib_link", "UNKNOWN"),
        ("cn02", "load", "OK"),
    ]:
        pixels = tab.cell(node, check)
        assert pixels, (node, check)
        assert all(near(p, COLORS[status]) for p in pixels), (node, check, set(pixels))
    assert tab.cell("cn01", "ib_link") is not None  # the slot is there: no entry, not coloured
    assert not any(near(p, c) for p in tab.cell("cn01", "ib_link") for c in COLORS.values())


def test_a_stale_cell_is_hatched_and_a_silenced_cell_dimmed(served, page):
    a_cluster(served)
    tab = page()
    stale = tab.cell("gpu003", "load")  # UNKNOWN now: its stale record
    base = [p for p in stale if near(p, COLORS["UNKNOWN"])]
    stripes = [p for p in stale if sum(p) < sum(COLORS["UNKNOWN"]) - 150]
    assert base and stripes and len(base) + len(stripes) == len(stale), set(stale)
    silenced = tab.cell("cn01", "load")
    assert all(near(p, dimmed("CRITICAL")) for p in silenced), set(silenced)


def test_a_cells_details_show_under_the_pointer_and_a_click_opens_its_node(served, page):
    a_cluster(served)
    tab = page()
    rect = tab.js("() => window.statusPage.cellRect('gpu002', 'load')")
    box = tab.tab.locator("#map").bounding_box()
    x = box["x"] + rect["x"] + rect["size"] / 2
    y = box["y"] + rect["y"] + rect["size"] / 2
    tab.tab.mouse.move(x, y)
    tip = tab.until(SHOWN.format(id="tip", text="innerText"))
    assert tip.splitlines() == [
        "gpu002 · load",
        "WARNING",
        tip.splitlines()[2],
        "load warning on gpu002",
    ]
    assert tip.splitlines()[2] in ("last result 1m ago", "last result 2m ago")
    tab.tab.mouse.click(x, y)
    tab.tab.wait_for_url(served.base + "/node/gpu002")


def test_nodes_are_grouped_by_name_prefix(served, page):
    a_cluster(served)
    tab = page()
    groups = tab.js("() => window.statusPage.data.groups")
    assert groups == [["cn", 0, 2], ["gpu", 2, 3]]
    top = {node: tab.js("(n) => window.statusPage.cellRect(n, 'load').y", node)
           for node in ("cn01", "cn02", "gpu001")}  # fmt: skip
    assert top["cn01"] < top["gpu001"] and top["cn02"] < top["gpu001"]


# -- the problems and the filters ----------------------------------------------------------


def test_the_problems_are_listed_worst_first(served, page):
    a_cluster(served)
    tab = page()
    assert tab.problems() == [
        ("gpu001", "ib_link"),  # CRITICAL, for 10 minutes
        ("cn01", "load"),  # CRITICAL for 2 (and silenced)
        ("gpu003", "load"),  # UNKNOWN and stale
        ("gpu003", "ib_link"),  # UNKNOWN
        ("gpu002", "load"),  # WARNING
    ]
    row = tab.js(
        """() => [...document.querySelector("#problems tbody tr[data-node='cn01']").cells]
            .map((td) => td.innerText)"""
    )
    assert row[0].split() == ["CRITICAL", "silenced"]
    assert row[1:3] == ["cn01", "load"] and row[6] == "fan swap, ask Ana"
    assert row[7] == "load critical on cn01"
    counts = tab.js(
        """() => Object.fromEntries([...document.querySelectorAll("#counts [data-count]")]
            .map((span) => [span.dataset.count, Number(span.querySelector("b").innerText)]))"""
    )
    assert counts == {"OK": 3, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 2, "stale": 1, "silenced": 1}


def test_the_node_check_and_status_filters_narrow_the_map_and_the_problems(served, page):
    a_cluster(served)
    tab = page()
    tab.tab.fill("#f-node", "gpu*")
    tab.until("!window.statusPage.cellRect('cn01', 'load')")
    assert tab.cell("gpu001", "ib_link") is not None
    assert [node for node, _ in tab.problems()] == ["gpu001", "gpu003", "gpu003", "gpu002"]
    tab.tab.fill("#f-check", "ib_*")
    tab.until("!window.statusPage.cellRect('gpu001', 'load')")
    assert tab.problems() == [("gpu001", "ib_link"), ("gpu003", "ib_link")]
    tab.tab.fill("#f-check", "")
    tab.tab.select_option("#f-status", "WARNING")
    tab.until("document.querySelectorAll('#problems tbody tr').length === 1")
    assert tab.problems() == [("gpu002", "load")]
    assert tab.js("() => location.hash") == "#node=gpu*&status=WARNING"
    # a cell of a shown node that does not match the status is drawn faint
    assert not any(near(p, COLORS["OK"]) for p in tab.cell("gpu002", "ib_link"))
    assert tab.cell("gpu001", "ib_link") is None  # no WARNING on gpu001: not shown
    again = page("/#node=cn0[1]&status=silenced")  # a link keeps the filters
    assert again.problems() == [("cn01", "load")]
    tab.tab.click("#f-clear")
    tab.until("document.querySelectorAll('#problems tbody tr').length === 5")


# -- refreshing -------------------------------------------------------------------------------


def test_a_new_result_shows_without_a_reload(served, page):
    a_cluster(served)
    tab = page()
    tab.js("() => { window.notReloaded = true; }")
    served.take(record("gpu002", "load", "CRITICAL"))
    tab.until("document.querySelector(\"#problems tbody tr[data-node='gpu002'] .status\")"
              "?.innerText === 'CRITICAL'")  # fmt: skip
    assert all(near(p, COLORS["CRITICAL"]) for p in tab.cell("gpu002", "load"))
    assert tab.js("() => window.notReloaded") is True


def test_data_older_than_the_refresh_is_said_on_the_page(served, page):
    a_cluster(served)
    tab = page()
    assert tab.js("() => document.getElementById('banner').hidden") is True
    os.kill(served.proc.pid, signal.SIGSTOP)  # the server stops answering
    try:
        banner = tab.until(SHOWN.format(id="banner", text="innerText"))
    finally:
        os.kill(served.proc.pid, signal.SIGCONT)
    assert banner.startswith("The data shown is ")
    assert "the server has not answered since" in banner
    tab.until("document.getElementById('banner').hidden")


# -- escaping ---------------------------------------------------------------------------------

MARKUP = [
    "<script>window.pwned = 1; alert('script')</script>",
    '"><img src=x onerror="window.pwned = 2; alert(\'img\')">',
]


def test_a_record_full_of_markup_runs_nothing_and_is_shown_as_written(served, page):
    """With the page's policy bypassed: the escaping itself is what is tested."""
    served.take(
        record("gpu001", "ib_link", "CRITICAL", short=MARKUP[0], long=MARKUP[1],
               data={"note": MARKUP[1]}),
        record("gpu001", "load", "WARNING", short=MARKUP[1]),
        record("<b>gpu002</b>", "<i>load</i>", "CRITICAL", short=MARKUP[1]),
    )  # fmt: skip
    tab = page(bypass_csp=True)
    shorts = tab.js(
        "() => [...document.querySelectorAll('#problems td.short')].map((td) => td.textContent)"
    )
    assert sorted(shorts) == sorted([MARKUP[0], MARKUP[1], MARKUP[1]])
    names = tab.js("() => [...document.querySelectorAll('#problems tbody tr')].map((tr) => "
                   "[tr.cells[1].textContent, tr.cells[2].textContent])")  # fmt: skip
    assert ["<b>gpu002</b>", "<i>load</i>"] in names
    rect = tab.js("() => window.statusPage.cellRect('gpu001', 'ib_link')")
    box = tab.tab.locator("#map").bounding_box()
    tab.tab.mouse.move(box["x"] + rect["x"] + 2, box["y"] + rect["y"] + 2)
    tip = tab.until(SHOWN.format(id="tip", text="textContent"))
    assert MARKUP[0] in tip

    node = page("/node/gpu001", bypass_csp=True)
    node.until("document.querySelectorAll('#checks tbody tr').length === 2")
    assert node.js("() => document.querySelector('pre.long').textContent") == MARKUP[1]
    data = node.js("() => document.querySelector('pre.data').textContent")
    assert MARKUP[1].replace('"', '\\"') in data
    odd = page("/node/" + "%3Cb%3Egpu002%3C%2Fb%3E", bypass_csp=True)
    odd.until("document.querySelectorAll('#checks tbody tr').length === 1")
    assert odd.js("() => document.getElementById('title').textContent") == "<b>gpu002</b>"

    for opened in (tab, node, odd):
        assert opened.dialogs == [] and opened.errors == []
        assert opened.js("() => window.pwned") is None
        injected = "img, script:not([src]), tbody b, tbody i, pre *, #tip *:not(div), h1 *"
        assert opened.js("(css) => document.querySelectorAll(css).length", injected) == 0
        assert not any("pwned" in line or "alert" in line for line in opened.console)


# -- silences ---------------------------------------------------------------------------------


def test_a_silence_added_with_the_token_shows_and_without_it_is_refused(served, page):
    a_cluster(served)
    tab = page()
    form = tab.tab.locator("#silence-form")
    form.locator("[name=node]").fill("gpu001")
    form.locator("[name=check]").fill("ib_link")
    form.locator("[name=comment]").fill("cable swap, ask Bo")
    form.locator("[name=token]").fill("not the token")
    form.locator("button[type=submit]").click()
    refused = tab.until("document.querySelector('#silence-result.refused')?.innerText")
    assert refused.startswith("Refused (401): a token is needed")
    assert tab.js("() => document.querySelectorAll('#silences tbody tr').length") == 1

    form.locator("[name=comment]").fill("cable swap, ask Bo")
    form.locator("[name=token]").fill(TOKEN)
    form.locator("button[type=submit]").click()
    done = tab.until("document.querySelector('#silence-result.done')?.innerText")
    assert done.endswith("added; it covers 1 check now.")
    tab.until("document.querySelectorAll('#silences tbody tr').length === 2")
    tab.until("[...document.querySelectorAll(\"#problems tr[data-node='gpu001'] td.silence\")]"
              ".some((td) => td.innerText === 'cable swap, ask Bo')")  # fmt: skip
    assert all(near(p, dimmed("CRITICAL")) for p in tab.cell("gpu001", "ib_link"))
    [added] = [s for s in served.get("/api/silences").json() if s["node"] == "gpu001"]
    assert added["check"] == "ib_link" and added["comment"] == "cable swap, ask Bo"

    tab.tab.locator(f"#silences tr[data-silence='{added['id']}'] button.remove").click()
    tab.until("document.querySelectorAll('#silences tbody tr').length === 1")
    assert [s["node"] for s in served.get("/api/silences").json()] == ["cn01"]


def test_without_a_token_configured_the_page_offers_no_form(cli, browser):
    served = Served(cli, {"url": f"sqlite:///{cli.tmp / 'state.db'}"})
    served.take(record("gpu001", "load", "OK"))
    served.start()
    tab = Page(browser, served.base).open()
    try:
        assert tab.js("() => document.getElementById('silence-form').hidden") is True
        assert "it needs [serve] token" in tab.js(
            "() => document.getElementById('silences-note').innerText"
        )
    finally:
        tab.close()
        served.stop()


# -- the node's page --------------------------------------------------------------------------


def test_a_nodes_page_shows_every_check_with_its_texts_data_and_silence(served, page):
    a_cluster(served)
    served.take(
        record("cn01", "ib_link", "OK", long="port 1: up\nport 2: up", data={"ports": [1, 2]})
    )
    tab = page("/node/cn01")
    tab.until("document.querySelectorAll('#checks tbody tr').length === 2")
    rows = tab.js(
        "() => [...document.querySelectorAll('#checks tbody tr')].map((tr) => "
        "[...tr.cells].map((td) => td.innerText))"
    )
    assert [row[1] for row in rows] == ["ib_link", "load"]
    assert rows[1][0].split() == ["CRITICAL", "silenced"]
    assert rows[1][5].startswith("fan swap, ask Ana")
    details = tab.js(
        "() => [...document.querySelectorAll('details.check')].map((d) => "
        "[d.querySelector('pre.long').textContent, d.querySelector('pre.data').textContent])"
    )
    assert details[0] == ["port 1: up\nport 2: up", '{\n  "ports": [\n    1,\n    2\n  ]\n}']
    assert tab.errors == [] and tab.dialogs == []


def test_a_state_that_cannot_be_reached_is_said_on_the_page(cli, browser):
    from servers import RedisServer

    if missing_reason("redis") or importlib.util.find_spec("redis") is None:
        pytest.skip(missing_reason("redis") or "pip install 'accre-monitor[redis]'")
    with RedisServer() as redis_server:
        settings = {"url": redis_server.url, "key_prefix": "page"}
        served = Served(cli, settings, {"refresh": 1})
        served.take(record("gpu001", "load", "OK"))
        served.start()
        tab = Page(browser, served.base).open()
        try:
            redis_server.stop()
            banner = tab.until(
                "!document.getElementById('banner').hidden && "
                "document.getElementById('banner').innerText.includes('cannot use the state') && "
                "document.getElementById('banner').innerText"
            )
            assert redis_server.url in banner
            assert tab.errors == []
        finally:
            tab.close()
            served.stop()
