"""The waiting room's pages in a real browser (Debian's Chromium, driven by Playwright), against
the queue API's handlers and moto on 127.0.0.1: what a visitor sees and where they are sent,
in English and French, at a phone's and a desktop's width, checked by axe-core for WCAG 2.1 AA.

The page's timers run on Playwright's fake clock (`page.clock`), so a poll that waits 15 s in
real life is one call here; the room's clock is `handlers.clock`, moved by each test."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from functions.admission import admin, handlers, inlet, tokens
from functions.admission.room import Room
from tests.functions.local_api import serve
from tests.functions.room_fixtures import T0, join_many, set_alarm
from tests.functions.site import PORTAL_TITLE, PortalSite

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
"""Debian's chromium package (the Makefile installs it); Playwright downloads no browser."""
AXE = ROOT / "node_modules/axe-core/axe.min.js"
"""axe-core from npm (package.json; the Makefile runs npm ci)."""
WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
PHONE, DESKTOP = 375, 1280
WAITING = "/waiting-room/index.html?return=%2Fapply%3Fstep%3D2"
WAIT_MS = 20_000
"""How long a wait for the page may take before the test fails: a guard against a hang, not a
speed check. On a loaded 2-core machine (pyright beside two test workers) a navigation that
takes milliseconds alone has taken over 5 s."""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        # Root in CI: Chromium's sandbox needs an unprivileged user.
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def site(room: Room, monkeypatch) -> Iterator[tuple[str, list[float]]]:
    """The portal on 127.0.0.1 and the room's clock (a one-item list the test moves)."""
    now = [T0 + 2]
    monkeypatch.setattr(handlers, "clock", lambda: now[0])
    with serve(room, PortalSite) as (host, port):
        yield f"http://{host}:{port}", now


def open_page(
    browser: Browser,
    url: str,
    *,
    width: int = DESKTOP,
    locale: str = "en-CA",
    fake_clock: bool = True,
) -> Page:
    """`url` in a new browser context, once its first answer (the join) is on the page."""
    context = browser.new_context(viewport={"width": width, "height": 800}, locale=locale)
    page = context.new_page()
    if fake_clock:
        page.clock.install()
        # Polls seconds apart on the fake clock are milliseconds apart in real time, inside the
        # API's `max-age=2` (real polls are at least 5 s apart): routing turns the browser's
        # HTTP cache off (Playwright, "Network": enabling routing disables the cache).
        page.route("**/queue/**", lambda route: route.continue_())
    if "/waiting-room/index.html" not in url:
        page.goto(url)
        return page
    with page.expect_response("**/queue/join"):
        page.goto(url)
    # The answer is on the page: the figures shown, or the page left (the closed notice).
    page.wait_for_function("!(document.getElementById('figures') || {}).hidden", timeout=WAIT_MS)
    return page


def text(page: Page, selector: str) -> str:
    return page.locator(selector).inner_text().strip()


def until(page: Page, selector: str, contains: str) -> None:
    """Wait (real time, up to WAIT_MS) until `selector`'s text contains `contains`."""
    try:
        page.wait_for_function(
            "([s, c]) => (document.querySelector(s) || {}).textContent?.includes(c)",
            arg=[selector, contains],
            timeout=WAIT_MS,
        )
    except Exception:
        raise AssertionError(
            f"{selector} never held {contains!r}: {page.inner_text('body')!r}"
        ) from None


def poll_once(page: Page) -> None:
    """Let the page's next poll fire (the longest interval is 60 s, plus 20 % jitter)."""
    page.clock.run_for(75_000)


def axe_violations(page: Page) -> list[dict[str, Any]]:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        "(tags) => axe.run(document, {runOnly: {type: 'tag', values: tags}})", WCAG_21_AA
    )
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": len(v["nodes"])}
        for v in result["violations"]
    ]


# -- in line, admitted, sent back -----------------------------------------------------------


def test_a_visitor_joins_sees_their_place_and_is_let_in_to_their_page(browser, site, room):
    base, now = site
    join_many(room, 15)  # fifteen people ahead
    page = open_page(browser, base + WAITING)
    until(page, "#message", "being confirmed")
    now[0] = T0 + 10
    assert inlet.step(room, T0 + 10)["admitted"] == 10  # capacity 10: places 1-10 go in
    poll_once(page)
    until(page, "#place", "16")
    assert text(page, "#ahead") == "5" and text(page, "#message").startswith("You are in line")
    assert not page.locator("#figures").is_hidden()
    now[0] = T0 + 150  # still polling: the page keeps its place (the others stopped)
    # "#ahead" already reads 5, so waiting on it would not wait for this poll: wait for its
    # answer, or the inlet below may run before the room saw the page at T0 + 150.
    with page.expect_response(lambda r: "/queue/status" in r.url):
        poll_once(page)
    until(page, "#ahead", "5")
    now[0] = T0 + 200  # the ten admitted never came (show window over); the rest left
    inlet.step(room, T0 + 200)
    poll_once(page)
    page.wait_for_url(base + "/apply?step=2", timeout=WAIT_MS)
    assert page.title() == PORTAL_TITLE
    cookies = {c.get("name"): c for c in page.context.cookies()}
    assert cookies["fg_admit"].get("httpOnly") and cookies["fg_admit"].get("path") == "/"


def test_someone_inside_when_queueing_began_passes_through_the_page_at_once(browser, site, room):
    """Issue 26: the gate sends a session holder's page load to the waiting page at its turn;
    the page's join carries them in (no place, no wait) and they are back on their page with
    a token that names their network."""
    base, _ = site
    join_many(room, 15)  # a line they do not wait in
    keys = room.signing_keys(T0)
    kid = keys["current"]
    network = tokens.network_id("election-2028", "127.0.0.1")  # the local API's viewer
    assert network is not None
    session = tokens.sign_session("election-2028", network, int(T0) + 1_200, kid,
                                  keys["keys"][kid]["key"], int(T0) - 300)  # fmt: skip
    context = browser.new_context(locale="en-CA")
    context.add_cookies([{"name": "fg_session", "value": session, "url": base}])
    page = context.new_page()
    page.goto(base + WAITING)
    page.wait_for_url(base + "/apply?step=2", timeout=WAIT_MS)
    assert page.title() == PORTAL_TITLE
    admit = {c.get("name"): c.get("value", "") for c in context.cookies()}["fg_admit"]
    assert admit.startswith("v2.election-2028.") and admit.split(".")[5] == network
    context.close()


def test_a_newcomer_to_a_full_metered_room_is_told_so_and_joins_again(browser, site, room):
    """Issue 27: open and metering, a newcomer's page load comes through the waiting page; a
    moment's room taken (429 `metered`) says so, holds no place, and joins again after
    Retry-After: this time admitted at once, back on their page with a token for their
    network."""
    base, now = site
    room.config = replace(room.config, meter=1)
    admin.pin(room, "open", T0)
    admin.pin(room, None, T0)
    now[0] = T0 + 10
    inlet.step(room, T0 + 10)
    context = browser.new_context(locale="en-CA")
    page = context.new_page()
    page.clock.install()
    full = json.dumps({"error": "metered", "message": "the room is full this moment"})
    refused = [0]

    def once(route: Any) -> None:
        if refused[0]:
            route.continue_()
            return
        refused[0] += 1
        route.fulfill(status=429, body=full, headers={"content-type": "application/json",
                                                      "retry-after": "10"})  # fmt: skip

    page.route("**/queue/join", once)
    page.goto(base + WAITING)
    until(page, "#message", "full this moment")
    page.clock.run_for(15_000)
    page.wait_for_url(base + "/apply?step=2", timeout=WAIT_MS)
    admit = {c.get("name"): c.get("value", "") for c in context.cookies()}["fg_admit"]
    assert admit.split(".")[5] == tokens.network_id("election-2028", "127.0.0.1")
    assert "fg_visitor" not in {c.get("name") for c in context.cookies()}, "no place held"
    context.close()


def test_a_visitor_sent_back_at_once_waits_before_going_again(browser, site, room):
    """The edge could not check the token (a key not yet at the edge): no redirect loop."""
    base, now = site
    page = open_page(browser, base + WAITING)
    now[0] = T0 + 10
    inlet.step(room, T0 + 10)
    poll_once(page)
    page.wait_for_url("**/apply?step=2", timeout=WAIT_MS)
    page.goto(base + WAITING)  # the gate sent them straight back
    until(page, "#message", "Checking your turn again in 5 seconds")
    assert "/waiting-room/" in page.url
    page.clock.run_for(6_000)
    page.wait_for_url("**/apply?step=2", timeout=WAIT_MS)


@pytest.mark.parametrize(
    "value",
    [
        "%2F%09%2Fevil.example",
        "%2F%0A%2Fevil.example",
        "%2F%0D%2Fevil.example",
        "%2F%5Cevil.example",
        "https%3A%2F%2Fevil.example%2F",
        "javascript%3Aalert(1)",
        "%2F%2Fevil.example",
    ],
)
def test_the_return_path_never_leaves_the_site(browser, site, room, value):
    base, now = site
    page = open_page(browser, f"{base}/waiting-room/index.html?return={value}")
    now[0] = T0 + 10
    inlet.step(room, T0 + 10)
    poll_once(page)
    page.wait_for_url(base + "/", timeout=WAIT_MS)
    assert text(page, "#portal") == "/"


# -- when things go wrong -------------------------------------------------------------------


def test_the_api_down_shows_a_retry_message_and_backs_off(browser, site, room):
    base, _ = site
    page = open_page(browser, base + WAITING)
    until(page, "#message", "being confirmed")
    page.route("**/queue/status", lambda route: route.fulfill(status=502, body="Bad Gateway"))
    page.clock.run_for(20_000)
    until(page, "#message", "Trying again in 5 seconds")
    page.clock.run_for(7_000)
    until(page, "#message", "Trying again in 10 seconds")
    page.unroute("**/queue/status")
    page.clock.run_for(13_000)
    until(page, "#message", "being confirmed")


def test_a_busy_answer_waits_as_long_as_it_is_told(browser, site, room):
    base, _ = site
    page = open_page(browser, base + WAITING)
    until(page, "#message", "being confirmed")
    busy = json.dumps({"error": "busy", "retry_after_s": 60})  # WAF's join limit answers so
    page.route(
        "**/queue/status",
        lambda route: route.fulfill(
            status=429, body=busy, headers={"content-type": "application/json"}
        ),
    )
    page.clock.run_for(20_000)
    until(page, "#message", "Trying again in 60 seconds")


def test_a_revoked_visitor_is_told_so_and_polling_stops(browser, site, room):
    base, now = site
    page = open_page(browser, base + WAITING)
    until(page, "#message", "being confirmed")
    visitor = next(c.get("value") for c in page.context.cookies() if c.get("name") == "fg_visitor")
    now[0] = T0 + 10
    inlet.step(room, T0 + 10)
    admin.revoke(room, visitor, T0 + 10)
    calls: list[str] = []
    page.on("request", lambda r: calls.append(r.url) if "/queue/" in r.url else None)
    poll_once(page)
    until(page, "#message", "has been withdrawn")
    poll_once(page)
    assert len(calls) == 1, "no more polls"


def test_paused_admissions_are_said_not_a_wait_that_is_not_moving(browser, site, room):
    base, now = site
    join_many(room, 15)
    page = open_page(browser, base + WAITING)
    now[0] = T0 + 10
    inlet.step(room, T0 + 10)  # the line moves: 10 in, a rate
    set_alarm(room, "ALARM")
    now[0] = T0 + 20
    inlet.step(room, T0 + 20)
    poll_once(page)
    until(page, "#message", "paused")
    assert text(page, "#wait") == "paused" and "less than" not in page.inner_text("main")


def test_a_closed_room_keeps_the_way_back(browser, site, room):
    base, _ = site
    admin.pin(room, "closed", T0 + 3)
    page = open_page(browser, base + WAITING)
    page.wait_for_url("**/waiting-room/closed.html?return=*", timeout=WAIT_MS)
    assert page.locator("a.back").first.get_attribute("href") == "/apply?step=2"
    assert axe_violations(page) == []


def test_the_high_demand_page_never_refreshes_on_its_own(browser, site):
    """WCAG 2.2.1: a forced refresh is a time limit the visitor cannot turn off."""
    base, _ = site
    page = open_page(browser, base + "/high-demand/index.html", fake_clock=False)
    assert page.locator("meta[http-equiv='refresh' i]").count() == 0
    assert page.locator("a", has_text="Try again").get_attribute("href") == ""
    assert axe_violations(page) == []


def test_the_high_demand_page_tells_a_failed_form_it_was_not_received(browser, site):
    """The page answers any request the origin failed, a form's POST included (CloudFront fails
    over only GET, HEAD and OPTIONS): it never claims a submission was kept, in either language."""
    base, _ = site
    page = open_page(browser, base + "/high-demand/index.html", fake_clock=False)
    english = page.inner_text("section[lang=en]")
    french = page.inner_text("section[lang=fr]")
    assert "it was not received" in english and "has been lost" not in english
    assert "il n\u2019a pas été reçu" in french and "perdu" not in french


# -- without JavaScript ----------------------------------------------------------------------


def open_without_javascript(browser: Browser, url: str) -> Page:
    context = browser.new_context(java_script_enabled=False, locale="fr-CA")
    page = context.new_page()
    page.goto(url)
    return page


def scripts_stripped(browser: Browser, url: str) -> Page:
    """`url` as a browser without JavaScript renders it, in a context where axe-core can run
    (it cannot where scripts are off): the page's own script elements removed as it loads."""
    page = browser.new_context(locale="fr-CA").new_page()

    def strip(route: Any) -> None:
        response = route.fetch()
        body = re.sub(r"<script\b.*?</script>", "", response.text(), flags=re.S)
        route.fulfill(response=response, body=body)

    page.route("**/*.html*", strip)
    page.goto(url)
    return page


def visible_headings(page: Page) -> list[tuple[str, str | None]]:
    """(tag, language) of each heading a visitor sees: its own or its nearest lang."""
    return [
        (h.evaluate("e => e.tagName"), h.evaluate("e => e.closest('[lang]').lang"))
        for h in page.locator("h1, h2, h3").all()
        if h.is_visible()
    ]


def test_without_javascript_the_waiting_page_says_what_it_cannot_do(browser, site):
    """No place is held without JavaScript: the page says so in both languages (a static page
    cannot read ?lang=), shows no figures and no claim of a place, one h1 per language, and
    its Français link keeps the address with its return= (a jump within the page)."""
    base, _ = site
    page = open_without_javascript(browser, f"{base}{WAITING}&lang=fr")
    shown = page.inner_text("main")
    assert "you do not have a place in line" in shown
    assert "vous n\u2019avez pas de place dans la file" in shown
    assert "You have a place" not in shown and "You are in line" not in shown
    assert not page.locator("#figures").is_visible() and not page.locator("#live").is_visible()
    assert visible_headings(page) == [("H1", "en"), ("H1", "fr")]
    stripped = scripts_stripped(browser, f"{base}{WAITING}&lang=fr")
    assert visible_headings(stripped) == visible_headings(page)
    assert axe_violations(stripped) == []
    page.get_by_role("link", name="Français").click()
    assert page.url.endswith("return=%2Fapply%3Fstep%3D2&lang=fr#static-fr")
    assert page.title() == "Waiting room | Salle d\u2019attente"


def test_with_javascript_the_static_explanation_is_gone(browser, site, room):
    base, _ = site
    page = open_page(browser, base + WAITING)
    assert not page.locator("#static").is_visible()
    assert visible_headings(page) == [("H1", "en")]
    assert "JavaScript" not in page.inner_text("main")


@pytest.mark.parametrize("javascript", [True, False])
def test_the_closed_page_has_one_heading_per_language_at_the_same_level(browser, site, javascript):
    base, _ = site
    context = browser.new_context(java_script_enabled=javascript)
    page = context.new_page()
    page.goto(base + "/waiting-room/closed.html?return=%2Fapply")
    assert visible_headings(page) == [("H1", "en"), ("H1", "fr")]
    back = "/apply" if javascript else "/"
    assert {a.get_attribute("href") for a in page.locator("a.back").all()} == {back}
    if not javascript:
        page = scripts_stripped(browser, base + "/waiting-room/closed.html?return=%2Fapply")
    assert axe_violations(page) == []


# -- languages, widths, accessibility -------------------------------------------------------


TITLES = {"en": "You are in line", "fr": "Vous êtes en file d\u2019attente"}


@pytest.mark.parametrize(
    ("query", "locale", "lang"),
    [
        ("", "en-CA", "en"),
        ("", "fr-CA", "fr"),
        ("&lang=fr", "en-CA", "fr"),
        ("&lang=en", "fr-CA", "en"),
    ],
)
def test_the_page_speaks_the_visitors_language(browser, site, query, locale, lang):
    """?lang= first, then the browser's language (the gate adds ?lang= from Accept-Language)."""
    base, _ = site
    page = open_page(browser, base + WAITING + query, locale=locale)
    until(page, "#title", TITLES[lang])
    assert page.evaluate("document.documentElement.lang") == lang
    assert page.title() == TITLES[lang]


@pytest.mark.parametrize("width", [PHONE, DESKTOP])
@pytest.mark.parametrize("lang", ["en", "fr"])
def test_the_waiting_page_fits_and_meets_wcag_21_aa(browser, site, room, width, lang):
    base, now = site
    join_many(room, 15)
    state = room.state()
    room.save({**state, "total_places": 123_456})  # a long line: six-digit figures
    page = open_page(browser, f"{base}{WAITING}&lang={lang}", width=width)
    now[0] = T0 + 10
    inlet.step(room, T0 + 10)
    poll_once(page)
    until(page, "#place", "123")
    page.clock.resume()  # axe-core runs on timers
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{overflow}px wider than the screen"
    for figure in ("#place", "#ahead", "#wait"):
        box = page.locator(figure).bounding_box()
        line = page.evaluate(
            f"parseFloat(getComputedStyle(document.querySelector('{figure}')).lineHeight)"
        )
        assert box is not None and box["height"] < 1.5 * line, f"{figure} wraps at {width}px"
    assert axe_violations(page) == []


def test_the_live_region_announces_only_what_changed(browser, site, room):
    """A screen reader announces every write to a live region: unchanged polls write nothing."""
    base, now = site
    join_many(room, 15)
    page = open_page(browser, base + WAITING)
    now[0] = T0 + 10
    inlet.step(room, T0 + 10)
    poll_once(page)
    until(page, "#place", "16")
    page.evaluate("""() => { window.writes = 0; new MutationObserver((m) => { window.writes +=
        m.length; }).observe(document.getElementById('message'),
        {childList: true, characterData: true, subtree: true}); }""")
    live = page.locator("[aria-live]")
    assert live.count() == 1 and live.first.get_attribute("id") == "message"
    for _ in range(3):
        poll_once(page)
    page.wait_for_timeout(300)
    assert page.evaluate("window.writes") == 0


RECEIPT = f"{'a' * 32}.1857000000.{'b' * 32}"
"""A receipt as the edge signs it (the page checks its shape; the status route its MAC)."""


def _receipt_answers(page: Page, status: int, body: dict[str, Any]) -> None:
    """The status route stubbed in the browser: what GET /inbox/receipts/<receipt> answers."""
    page.route(
        "**/inbox/receipts/*",
        lambda route: route.fulfill(
            status=status, content_type="application/json", body=json.dumps(body)
        ),
    )


@pytest.mark.parametrize(
    ("status", "body", "en", "fr"),
    [
        (200, {"status": "done", "received_at": 1_857_000_000}, "processed", "trait\u00e9"),
        (200, {"status": "received", "received_at": 1_857_000_000}, "waiting", "en attente"),
        (404, {"error": "unknown receipt"}, "not found", "introuvable"),
    ],
)
def test_the_confirmation_page_says_what_the_receipt_says(browser, site, status, body, en, fr):
    base, _ = site
    page = browser.new_context(locale="en-CA").new_page()
    _receipt_answers(page, status, body)
    page.goto(f"{base}/inbox/received.html?receipt={RECEIPT}&lang=en")
    until(page, "[data-status-en]", en)
    until(page, "[data-status-fr]", fr)
    assert RECEIPT in page.inner_text("main")
    assert visible_headings(page) == [("H1", "en"), ("H1", "fr")]
    assert axe_violations(page) == []


def test_the_confirmation_page_without_a_receipt_claims_nothing(browser, site):
    base, _ = site
    page = browser.new_context().new_page()
    page.goto(f"{base}/inbox/received.html")
    until(page, "#en-title", "holds no receipt")
    until(page, "#fr-title", "aucun re\u00e7u")


def test_without_javascript_the_confirmation_page_says_received_in_both_languages(browser, site):
    base, _ = site
    url = f"{base}/inbox/received.html?receipt={RECEIPT}"
    page = open_without_javascript(browser, url)
    shown = page.inner_text("main")
    assert (
        "Your form was received" in shown and "Votre formulaire a \u00e9t\u00e9 re\u00e7u" in shown
    )
    assert "Status" not in shown, "no status it cannot fetch"
    assert visible_headings(page) == [("H1", "en"), ("H1", "fr")]
    assert axe_violations(scripts_stripped(browser, url)) == []
