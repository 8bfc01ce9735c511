#!/usr/bin/env python3
"""test/serve/page_check.py -- the search page in a real browser: headless
Chromium (Debian's chromium + chromium-driver) driven by Selenium.  Types a
query, waits for the results and compares the listed snippets with
code.search's rows for the same query (read with psql); follows a "similar
code" link; keyboard navigation; the shared URL; an error.

usage: page_check.py BASE_URL [SCREENSHOT.png]
PG* variables name the test database.  Prints "ok - ..." / "not ok - ..."
lines (run.sh numbers and counts them).
"""
import sys
import urllib.parse

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait
from common import ok, sql_json

BASE = sys.argv[1].rstrip("/")
SHOT = sys.argv[2] if len(sys.argv) > 2 else None




def listed(driver):
    """what the page lists: (id, path:lines, qualified name) per result"""
    return [(int(r.get_attribute("data-id")), r.find_element(By.CSS_SELECTOR, ".path").text,
             r.find_element(By.CSS_SELECTOR, ".symbol").text)
            for r in driver.find_elements(By.CSS_SELECTOR, "#results > li.result")]


def expected(rows):
    return [(r["id"], f"{r['path']}:{r['start_line']}-{r['end_line']}", r["qualified_name"] or r["symbol"] or "")
            for r in rows]


def wait_done(driver, timeout=60):
    WebDriverWait(driver, timeout).until(
        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state") in ("done", "error"))


opts = webdriver.ChromeOptions()
opts.binary_location = "/usr/bin/chromium"
for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
          "--window-size=1280,1000", "--force-device-scale-factor=1"):
    opts.add_argument(a)
driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=opts)
try:
    driver.get(BASE + "/")
    WebDriverWait(driver, 30).until(EC.presence_of_element_located((By.ID, "q")))
    WebDriverWait(driver, 30).until(lambda d: len(Select(d.find_element(By.ID, "lang")).options) > 1)
    langs = [o.get_attribute("value") for o in Select(driver.find_element(By.ID, "lang")).options]
    want_langs = [r["language"] for r in sql_json("SELECT DISTINCT language FROM code.files ORDER BY 1")]
    ok(langs == [""] + want_langs, "the language filter lists the database's languages", langs)
    ok(driver.execute_script("return typeof window.hljs") == "object", "highlight.js loaded from the server")

    query = "decode a JSON document from a string"
    Select(driver.find_element(By.ID, "mode")).select_by_value("vector")
    box = driver.find_element(By.ID, "q")
    box.send_keys(query)
    box.send_keys(Keys.ENTER)
    wait_done(driver)
    want = expected(sql_json("SELECT * FROM code.search(query => :'q', k => 10, mode => 'vector')", q=query))
    got = listed(driver)
    ok(got == want and len(want) == 10, "typed query, vector mode: the listed snippets are code.search's rows",
       f"{got[:3]}\n{want[:3]}")
    url = urllib.parse.urlsplit(driver.current_url)
    params = urllib.parse.parse_qs(url.query)
    ok(params.get("q") == [query] and params.get("mode") == ["vector"], "the query is in the URL", driver.current_url)
    hl = driver.find_elements(By.CSS_SELECTOR, "#results li.result pre code.hljs span[class^='hljs-']")
    ok(len(hl) > 10, f"code is syntax-highlighted ({len(hl)} highlighted tokens)")
    timings = driver.find_element(By.ID, "timings").text
    ok("database" in timings and "round trip" in timings and "ms" in timings, "the query's timings are shown", timings)
    scores = driver.find_element(By.CSS_SELECTOR, "#results li.result .scores").text
    ok("score" in scores and "vector #1" in scores, "scores are shown", scores)

    if SHOT:
        driver.save_screenshot(SHOT)

    # keyboard: j j selects the second result, o shows it in its file
    driver.find_element(By.TAG_NAME, "body").send_keys("j")
    driver.find_element(By.TAG_NAME, "body").send_keys("j")
    sel = driver.find_elements(By.CSS_SELECTOR, "#results li.result.selected")
    ok(len(sel) == 1 and int(sel[0].get_attribute("data-id")) == want[1][0], "keys j j select the second result")
    driver.find_element(By.TAG_NAME, "body").send_keys("k")
    sel = driver.find_elements(By.CSS_SELECTOR, "#results li.result.selected")
    ok(len(sel) == 1 and int(sel[0].get_attribute("data-id")) == want[0][0], "key k goes back up")
    driver.find_element(By.TAG_NAME, "body").send_keys("o")
    ctx = WebDriverWait(driver, 30).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#results li.result.selected pre.context"))
    row = sql_json("SELECT s.start_line, s.end_line, r.root || '/' || f.path AS file FROM code.snippets s "
                   "JOIN code.files f ON f.id = s.file_id JOIN code.repos r ON r.id = f.repo_id WHERE s.id = :id",
                   id=want[0][0])[0]
    lines = open(row["file"], encoding="utf-8").read().split("\n")
    lo = max(1, row["start_line"] - 10)
    ok(ctx[0].get_attribute("textContent") == "\n".join(lines[lo - 1:row["end_line"] + 10]),
       "key o shows the snippet in its file (10 lines around, the file's text)")

    # a shared URL gives the same page
    driver.get(BASE + "/?" + urllib.parse.urlencode({"q": query, "mode": "vector"}))
    wait_done(driver)
    ok(listed(driver) == want and driver.find_element(By.ID, "q").get_attribute("value") == query,
       "opening the shared URL shows the same results and fills the query box")

    # similar code
    first = want[0][0]
    driver.find_element(By.CSS_SELECTOR, f"#results li.result[data-id='{first}'] a.similar").click()
    WebDriverWait(driver, 30).until(lambda d: "similar=" in d.current_url)
    wait_done(driver)
    want_sim = expected(sql_json("SELECT * FROM code.more_like_this(snippet_id => :id, k => 10)", id=first))
    ok(listed(driver) == want_sim and len(want_sim) > 0,
       f"the similar code link lists code.more_like_this({first})", f"{listed(driver)[:3]}\n{want_sim[:3]}")
    driver.back()
    WebDriverWait(driver, 30).until(lambda d: "similar=" not in d.current_url)
    wait_done(driver)
    ok(listed(driver) == want, "back returns to the search")

    # filters through the form: keyword mode, a language and a path
    driver.get(BASE + "/")
    WebDriverWait(driver, 30).until(lambda d: len(Select(d.find_element(By.ID, "lang")).options) > 1)
    Select(driver.find_element(By.ID, "mode")).select_by_value("keyword")
    Select(driver.find_element(By.ID, "lang")).select_by_value("python")
    driver.find_element(By.ID, "path").send_keys("pkg/%")
    box = driver.find_element(By.ID, "q")
    box.send_keys("split shell words")
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait_done(driver)
    want_kw = expected(sql_json("SELECT * FROM code.search(query => 'split shell words', k => 10, mode => 'keyword', "
                                "lang => 'python', path_like => 'pkg/%')"))
    ok(listed(driver) == want_kw and len(want_kw) > 0, "keyword mode with language and path filters = code.search")

    # an error is shown, not a blank page
    driver.get(BASE + "/?q=x&mode=fuzzy")
    wait_done(driver)
    status = driver.find_element(By.ID, "status")
    ok("error" in status.get_attribute("class") and "fuzzy" in status.text and "22023" in status.text,
       "an API error is shown with its SQLSTATE", status.text)
    logs = [l for l in driver.get_log("browser") if l["level"] == "SEVERE" and "fuzzy" not in l["message"]
            and "400" not in l["message"]]
    ok(not logs, "no JavaScript errors in the console", logs)
finally:
    driver.quit()
